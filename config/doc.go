// Package config reads the YAML configuration file of replayguard into a
// replayguard.Config: ${VAR} references are expanded from the environment
// inside values (never across YAML structure), unknown fields are errors,
// defaults are filled and the result validated. Every error of a file is
// reported at once (Errors), each naming its line and its field's path,
// an unknown field with the nearest known name, and none a secret's value.
package config
