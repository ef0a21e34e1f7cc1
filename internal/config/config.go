// Package config reads telguard's configuration file (YAML) into the
// options each component takes. Every field has a default, so no file at
// all is a valid configuration; a key the file does not know is an error,
// because a typo that is silently ignored is a security setting that is
// silently off.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration.
type Config struct {
	// DataDir holds the database and generated secrets. Default ./data.
	DataDir string `yaml:"data_dir"`
	// Policy is the policy file. Default examples/policy.yaml, or the copy
	// built into the binary when that file does not exist.
	Policy string `yaml:"policy"`
	Log    Log    `yaml:"log"`
	API    API    `yaml:"api"`
	Store  Store  `yaml:"store"`
	Engine Engine `yaml:"engine"`
	// Anomaly is the daemon's periodic retraining of the anomaly model.
	Anomaly Anomaly `yaml:"anomaly"`
	SIP     SIP     `yaml:"sip"`
	// Webhooks is the provider webhook ingress; see webhooks.go.
	Webhooks Webhooks `yaml:"webhooks"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error. Default info
	Format string `yaml:"format"` // text or json. Default text
}

// API configures the decision API.
type API struct {
	Listen       string        `yaml:"listen"`         // default 127.0.0.1:8080
	Keys         []Key         `yaml:"keys"`           // static API keys; see DefaultTenant
	MaxBodyBytes int64         `yaml:"max_body_bytes"` // default 16384
	ReadTimeout  time.Duration `yaml:"read_timeout"`   // default 5s
	WriteTimeout time.Duration `yaml:"write_timeout"`  // default 5s
	IdleTimeout  time.Duration `yaml:"idle_timeout"`   // default 120s
	// DefaultTenant gets the key from TELGUARD_API_KEY (or a generated one)
	// when no keys are configured. Default "demo".
	DefaultTenant string `yaml:"default_tenant"`
	// AnyEventTime lets requests carry any "time", not only one within 5
	// minutes of the server's clock. Only for a daemon dedicated to
	// simulation (telguard sim --target): a live daemon must keep it off,
	// or a client could space its attempts out of every window.
	AnyEventTime bool `yaml:"any_event_time"`
}

// Key is a static API key bound to one tenant. Give the key itself or the
// name of an environment variable holding it.
type Key struct {
	Tenant string `yaml:"tenant"`
	Key    string `yaml:"key"`
	KeyEnv string `yaml:"key_env"`
}

// Store configures persistence.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (the only one so far)
	Path   string `yaml:"path"`   // default DATA_DIR/telguard.db
	// RetainDecisions is how long the decisions log is kept. Default 30 days.
	RetainDecisions time.Duration `yaml:"retain_decisions"`
	// RetainHistory is how long call history (phone numbers in clear) is
	// kept, by call start. Default 400 days.
	RetainHistory time.Duration `yaml:"retain_history"`
	// RecordHistory makes the daemon keep every call it saw end (allowed
	// outbound calls, inbound calls it was told of) in the call history,
	// beside imported CDRs, so the anomaly model can be retrained on live
	// traffic. Default true.
	RecordHistory *bool `yaml:"record_history"`
	// FlushInterval bounds how long a decision waits to be written. Default 25ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// Engine configures housekeeping.
type Engine struct {
	// SweepInterval is how often calls past their maximum duration are
	// expired and idle counters forgotten. Default 5s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// Anomaly configures how the daemon retrains the anomaly model from the
// call history by itself.
type Anomaly struct {
	// RetrainEvery is how often the model is retrained; it is also
	// retrained at start when the model file is missing or older than
	// this. 0 turns retraining off (the model file is then only ever
	// written by `telguard anomaly train`). Default 24h; at least 1s
	// (short values are for tests; real use is hours).
	RetrainEvery *time.Duration `yaml:"retrain_every"`
	// TrainWindow is how much history, by call start, a retrain reads.
	// Default 720h (30 days); at least 1h.
	TrainWindow time.Duration `yaml:"train_window"`
	// Trees in the forest, 10 to 1000. Default 100.
	Trees int `yaml:"trees"`
	// Seed of the forest: the same history and seed give the same model.
	// Default 1 (0 means the default).
	Seed int64 `yaml:"seed"`
	// MinWindows is the fewest measured windows (about one per outbound
	// call read) worth a model; with fewer the model in force is kept.
	// Default 1000.
	MinWindows int `yaml:"min_windows"`
}

// Every returns retrain_every: 0 when retraining is off.
func (a Anomaly) Every() time.Duration {
	if a.RetrainEvery == nil {
		return 0
	}
	return *a.RetrainEvery
}

// Anomaly retraining bounds.
const (
	// MinRetrainEvery is the shortest retrain_every accepted (tests).
	MinRetrainEvery = time.Second
	// MinTrainWindow is the least history a retrain may read.
	MinTrainWindow = time.Hour
)

// MinKeyLength is the shortest API key accepted: keys are bearer secrets.
const MinKeyLength = 16

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Default returns the built-in configuration.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DataDir, "data")
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	def(&c.API.Listen, "127.0.0.1:8080")
	def(&c.API.DefaultTenant, "demo")
	if c.API.MaxBodyBytes == 0 {
		c.API.MaxBodyBytes = 16 << 10
	}
	defDur(&c.API.ReadTimeout, 5*time.Second)
	defDur(&c.API.WriteTimeout, 5*time.Second)
	defDur(&c.API.IdleTimeout, 120*time.Second)
	def(&c.Store.Driver, "sqlite")
	defDur(&c.Store.RetainDecisions, 30*24*time.Hour)
	defDur(&c.Store.RetainHistory, 400*24*time.Hour)
	if c.Store.RecordHistory == nil {
		on := true
		c.Store.RecordHistory = &on
	}
	defDur(&c.Store.FlushInterval, 25*time.Millisecond)
	defDur(&c.Engine.SweepInterval, 5*time.Second)
	if c.Anomaly.RetrainEvery == nil {
		every := 24 * time.Hour
		c.Anomaly.RetrainEvery = &every
	}
	defDur(&c.Anomaly.TrainWindow, 30*24*time.Hour)
	if c.Anomaly.Trees == 0 {
		c.Anomaly.Trees = 100
	}
	if c.Anomaly.Seed == 0 {
		c.Anomaly.Seed = 1
	}
	if c.Anomaly.MinWindows == 0 {
		c.Anomaly.MinWindows = 1000
	}
	c.Webhooks.applyDefaults()
	if c.SIP.Enabled() {
		def(&c.SIP.Tenant, c.API.DefaultTenant)
		def(&c.SIP.AccountFrom, "from_user")
	}
}

// StorePath returns the database path.
func (c *Config) StorePath() string {
	if c.Store.Path != "" {
		return c.Store.Path
	}
	return filepath.Join(c.DataDir, "telguard.db")
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)
var yamlField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// Load reads a configuration file over the defaults.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses configuration data; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0]
		}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			text := m[2]
			if fm := yamlField.FindStringSubmatch(text); fm != nil {
				text = fmt.Sprintf("unknown key %q", fm[1])
			}
			return nil, fmt.Errorf("%w: %s:%s: %s", ErrInvalid, name, m[1], text)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, name, msg)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks values the types cannot.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		return bad("api.listen", "want host:port, got %q", c.API.Listen)
	}
	if c.API.MaxBodyBytes < 1024 || c.API.MaxBodyBytes > 1<<20 {
		return bad("api.max_body_bytes", "want between 1024 and 1048576")
	}
	if c.Store.Driver != "sqlite" {
		return bad("store.driver", "only sqlite is supported so far, got %q", c.Store.Driver)
	}
	for i, k := range c.API.Keys {
		f := fmt.Sprintf("api.keys[%d]", i)
		if k.Tenant == "" {
			return bad(f+".tenant", "missing")
		}
		if (k.Key == "") == (k.KeyEnv == "") {
			return bad(f, "give exactly one of key or key_env")
		}
		if k.Key != "" && len(k.Key) < MinKeyLength {
			return bad(f+".key", "too short: at least %d characters", MinKeyLength)
		}
	}
	if c.Engine.SweepInterval < 100*time.Millisecond {
		return bad("engine.sweep_interval", "at least 100ms")
	}
	if every := c.Anomaly.Every(); every != 0 && every < MinRetrainEvery {
		return bad("anomaly.retrain_every", "0 (off) or at least %s, got %s", MinRetrainEvery, every)
	}
	if c.Anomaly.TrainWindow < MinTrainWindow {
		return bad("anomaly.train_window", "at least %s, got %s", MinTrainWindow, c.Anomaly.TrainWindow)
	}
	if c.Anomaly.Trees < 10 || c.Anomaly.Trees > 1000 {
		return bad("anomaly.trees", "want between 10 and 1000, got %d", c.Anomaly.Trees)
	}
	if c.Anomaly.MinWindows < 1 {
		return bad("anomaly.min_windows", "at least 1, got %d", c.Anomaly.MinWindows)
	}
	if err := c.SIP.validate(); err != nil {
		return err
	}
	if _, err := c.Webhooks.AllowInternalPrefixes(); err != nil {
		return err
	}
	if err := c.Webhooks.validate(); err != nil {
		return err
	}
	return nil
}

// ResolveKeys returns the configured API keys as key → tenant, reading
// key_env variables. An empty result means "use the default tenant key".
func (c *Config) ResolveKeys(getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for i, k := range c.API.Keys {
		v := k.Key
		if k.KeyEnv != "" {
			v = getenv(k.KeyEnv)
			if len(v) < MinKeyLength {
				return nil, fmt.Errorf("%w: api.keys[%d].key_env: $%s is unset or shorter than %d characters", ErrInvalid, i, k.KeyEnv, MinKeyLength)
			}
		}
		if _, dup := out[v]; dup {
			return nil, fmt.Errorf("%w: api.keys[%d]: the same key is given twice", ErrInvalid, i)
		}
		out[v] = k.Tenant
	}
	return out, nil
}
