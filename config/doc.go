// Package config reads the YAML configuration file of replayguard into a
// replayguard.Config: ${VAR} references are expanded from the environment
// inside values (never across YAML structure), unknown fields are errors,
// defaults are filled and the result validated.
package config
