//go:build !linux

package sipedge

import (
	"errors"
	"net"
)

// attachSocketFilter: classic BPF socket filters are Linux's.
func attachSocketFilter(*net.UDPConn, []bpfInsn) error {
	return errors.New("socket filters need Linux")
}

func detachSocketFilter(*net.UDPConn) error { return nil }
