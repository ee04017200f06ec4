// Package deploy holds the operator-facing files (alert rules, dashboard,
// units); its tests keep them valid and in step with the metrics the
// binaries register.
package deploy
