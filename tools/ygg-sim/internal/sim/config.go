package sim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Scenarios.
const (
	Steady   = "steady"
	Storm    = "storm"
	Loss     = "loss"
	Dispatch = "dispatch"
	Churn    = "churn"
)

// Bounds every run stays within, whatever the flags say.
const (
	MaxRunners  = 1_000_000
	MaxDuration = time.Hour
)

// Config is one simulation. DefaultConfig holds every default.
type Config struct {
	URL         string
	APIKey      string // registers runners (Bearer)
	OperatorKey string // lists runners and dispatches tasks (loss, dispatch)
	AllowRemote bool   // permit a URL that is not loopback

	Scenario    string
	Runners     int
	Duration    time.Duration // the measured phase, after the fleet is registered
	RampTimeout time.Duration // the longest the registration phase may take
	Concurrency int           // HTTP connections (and workers) for the runners
	// RegisterRate is registrations started per second during the ramp
	// (0 = all at once; the storm scenario always starts them all at once).
	RegisterRate   float64
	Jitter         float64 // heartbeats come up to this share of the interval early (the agent's 0.2)
	RequestTimeout time.Duration

	ProgressEvery time.Duration
	Progress      io.Writer // nil = no progress lines

	// Loss: LossPercent of the fleet stops LossAfter into the measured phase,
	// and comes back LossDuration later (0 = two lease TTLs).
	LossPercent  float64
	LossAfter    time.Duration
	LossDuration time.Duration
	PollEvery    time.Duration // how often the operator lists offline/unreachable runners

	// Dispatch: tasks per second, and how long a simulated task runs.
	Rate         float64
	TaskDuration time.Duration

	// Churn: runners leaving gracefully per second; each slot registers as a
	// new runner ChurnGap later.
	ChurnRate float64
	ChurnGap  time.Duration

	// Hook is called at "ramp-start", "measure-start" and "measure-end" (while
	// the load still runs), so a caller can sample the controller.
	Hook func(phase string)
	// Webhooks, when set, receives the controller's offline and
	// unreachable webhooks; the loss scenario then reports their arrival.
	Webhooks *WebhookSink
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		URL:            "http://127.0.0.1:3000",
		Scenario:       Steady,
		Runners:        1000,
		Duration:       60 * time.Second,
		RampTimeout:    3 * time.Minute,
		Concurrency:    64,
		RegisterRate:   5000,
		Jitter:         0.2,
		RequestTimeout: 30 * time.Second,
		ProgressEvery:  5 * time.Second,
		LossPercent:    10,
		LossAfter:      5 * time.Second,
		PollEvery:      time.Second,
		Rate:           10,
		TaskDuration:   200 * time.Millisecond,
		ChurnRate:      10,
		ChurnGap:       time.Second,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Scenario {
	case Steady, Storm, Loss, Dispatch, Churn:
	default:
		errs = append(errs, fmt.Errorf("-scenario: %q is not steady, storm, loss, dispatch or churn", c.Scenario))
	}
	if err := checkURL(c.URL, c.AllowRemote); err != nil {
		errs = append(errs, err)
	}
	if c.Runners < 1 || c.Runners > MaxRunners {
		errs = append(errs, fmt.Errorf("-runners: %d is not between 1 and %d", c.Runners, MaxRunners))
	}
	if c.Duration < time.Second || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("-duration: %v is not between 1s and %v", c.Duration, MaxDuration))
	}
	if c.RampTimeout < time.Second || c.RampTimeout > MaxDuration {
		errs = append(errs, fmt.Errorf("-ramp-timeout: %v is not between 1s and %v", c.RampTimeout, MaxDuration))
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		errs = append(errs, fmt.Errorf("-concurrency: %d is not between 1 and 10000", c.Concurrency))
	}
	if c.RegisterRate < 0 {
		errs = append(errs, fmt.Errorf("-register-rate: %v is negative", c.RegisterRate))
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("-jitter: %v is not in [0, 1)", c.Jitter))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-request-timeout: %v is not positive", c.RequestTimeout))
	}
	if c.ProgressEvery <= 0 {
		errs = append(errs, fmt.Errorf("-progress: %v is not positive", c.ProgressEvery))
	}
	if (c.Scenario == Loss || c.Scenario == Dispatch) && c.OperatorKey == "" {
		errs = append(errs, fmt.Errorf("-operator-key: the %s scenario needs an operator key", c.Scenario))
	}
	if c.Scenario == Loss {
		if c.LossPercent <= 0 || c.LossPercent > 100 {
			errs = append(errs, fmt.Errorf("-loss-percent: %v is not in (0, 100]", c.LossPercent))
		}
		if c.LossAfter < 0 || c.LossDuration < 0 {
			errs = append(errs, errors.New("-loss-after and -loss-duration must not be negative"))
		}
		if c.PollEvery < 10*time.Millisecond {
			errs = append(errs, fmt.Errorf("-poll: %v is below 10ms", c.PollEvery))
		}
	}
	if c.Scenario == Dispatch && (c.Rate <= 0 || c.Rate > 10000) {
		errs = append(errs, fmt.Errorf("-rate: %v is not in (0, 10000]", c.Rate))
	}
	if c.TaskDuration < 0 {
		errs = append(errs, fmt.Errorf("-task-duration: %v is negative", c.TaskDuration))
	}
	if c.Scenario == Churn && (c.ChurnRate <= 0 || c.ChurnRate > 10000) {
		errs = append(errs, fmt.Errorf("-churn-rate: %v is not in (0, 10000]", c.ChurnRate))
	}
	return errors.Join(errs...)
}

// checkURL refuses anything but http(s) to a loopback address unless
// allowRemote: this tool generates load, and by default only ever on this
// machine.
func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url: %q is not http or https", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url: %q is not a loopback address (127.0.0.1, ::1, localhost); pass -allow-remote to load another host", raw)
}
