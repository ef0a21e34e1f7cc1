package cli

func (e *env) cdr(args []string) error {
	return usagef("cdr: not built yet")
}
