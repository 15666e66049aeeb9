// Package test validates the deployment files without a cluster or a Docker
// engine.
package test
