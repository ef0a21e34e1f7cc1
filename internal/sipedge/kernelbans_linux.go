package sipedge

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// attachSocketFilter installs prog on c, replacing any filter before it.
func attachSocketFilter(c *net.UDPConn, prog []bpfInsn) error {
	insns := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		insns[i] = unix.SockFilter{Code: in.code, Jt: in.jt, Jf: in.jf, K: in.k}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]})
	}); err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("attach socket filter: %w", serr)
	}
	return nil
}

// detachSocketFilter removes c's socket filter, if it has one.
func detachSocketFilter(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("detach socket filter: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
	}); err != nil {
		return fmt.Errorf("detach socket filter: %w", err)
	}
	if serr != nil && serr != unix.ENOENT {
		return fmt.Errorf("detach socket filter: %w", serr)
	}
	return nil
}
