package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
)

// A retrain reads the whole train_window of history and trains a forest:
// seconds of one core's work and tens of MB of garbage. In the daemon's
// process that raised the decision API's p99 2-4× while it ran (BENCHMARKS
// §7). Run as `telguard anomaly train` in a child process instead, at nice
// 19 and with one thread, it competes with decisions only for what the
// scheduler leaves over, and its heap is its own. The child writes the
// model to a file of its own; the daemon then writes it over the model
// file and puts it in force exactly as an in-process retrain does.

// childSummary is the part of `anomaly train --json` the daemon reads.
type childSummary struct {
	Calls   int `json:"calls"`
	Samples int `json:"samples"`
	Skipped int `json:"skipped"`
	Bytes   int `json:"bytes"`
}

// maxChildOutput bounds what is kept of the child's stdout and stderr.
const maxChildOutput = 64 << 10

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// trainInChild runs d.trainCmd on the stored history of every tenant of
// the policy file in force since train_window ago and returns what it
// read and the model it trained. Too little history is a Training without
// a model and anomaly.ErrNoSamples.
func (d *Daemon) trainInChild(ctx context.Context) (Training, error) {
	ac := d.cfg.Anomaly
	out := filepath.Join(d.cfg.DataDir, ModelFile+".retrain")
	defer os.Remove(out)
	defer os.Remove(out + ".lock")
	args := append([]string(nil), d.trainCmd...)
	args = append(args, "--from", "stored", "--store", d.cfg.StorePath(), "--data", d.cfg.DataDir,
		"--since", strconv.FormatInt(int64(ac.TrainWindow/time.Second), 10)+"s",
		"--trees", strconv.Itoa(ac.Trees), "--seed", strconv.FormatInt(ac.Seed, 10),
		"--out", out, "--json")
	d.reloadMu.Lock() // a reload may change the policy file meanwhile
	policyFile := d.policyPath
	d.reloadMu.Unlock()
	if policyFile != "" {
		args = append(args, "--policy", policyFile)
	}
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{nice, "-n", "19"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	stdout, stderr := &boundedBuffer{max: maxChildOutput}, &boundedBuffer{max: maxChildOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	var sum childSummary
	jsonErr := json.Unmarshal(stdout.Bytes(), &sum)
	res := Training{Calls: sum.Calls, Windows: sum.Samples, Skipped: sum.Skipped}
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case jsonErr == nil && sum.Bytes == 0:
		return res, anomaly.ErrNoSamples
	case runErr != nil:
		return res, fmt.Errorf("train in %s: %w: %s", filepath.Base(d.trainCmd[0]), runErr, lastLine(stderr.String()))
	case jsonErr != nil:
		return res, fmt.Errorf("train in a child process: read its summary: %w", jsonErr)
	}
	data, err := readStateFile(out)
	if err != nil {
		return res, fmt.Errorf("train in a child process: %w", err)
	}
	var m anomaly.Forest
	if err := m.UnmarshalBinary(data); err != nil {
		return res, fmt.Errorf("train in a child process: read its model: %w", err)
	}
	res.Model = &m
	return res, nil
}

// lastLine is the last non-empty line of s, for an error message.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "no message"
	}
	return s
}
