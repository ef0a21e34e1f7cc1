// Command retrain-loadgen sends check requests at a fixed rate for a duration and prints latency percentiles.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"
)

func main() {
	base, key := os.Args[1], os.Args[2]
	dur, _ := time.ParseDuration(os.Args[3])
	rate, _ := strconv.Atoi(os.Args[4])
	tick := time.NewTicker(time.Second / time.Duration(rate))
	end := time.Now().Add(dur)
	var lat []time.Duration
	i := 0
	for time.Now().Before(end) {
		<-tick.C
		i++
		body := fmt.Sprintf(`{"call_id":"ld-%d-%d","account":"10%02d","to":"+5511987%06d"}`, time.Now().UnixNano(), i, i%100, i)
		req, _ := http.NewRequest("POST", base+"/v1/calls/check", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println("err", err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	fmt.Printf("n=%d p50=%v p99=%v max=%v\n", len(lat), p(0.5), p(0.99), lat[len(lat)-1])
}
