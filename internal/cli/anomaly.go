package cli

func (e *env) anomaly(args []string) error {
	return usagef("anomaly: not built yet")
}
