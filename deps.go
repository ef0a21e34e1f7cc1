package main
import (
 _ "go.yaml.in/yaml/v3"
 _ "github.com/nyaruka/phonenumbers"
 _ "modernc.org/sqlite"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "golang.org/x/sync/errgroup"
)
func main(){}
