package cli

func (e *env) replay(args []string) error {
	return usagef("replay: not built yet")
}
