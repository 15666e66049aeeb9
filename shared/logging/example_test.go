package logging_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
)

// The original controller's quick start,
//
//	const logger = new Logger({ level: 'info', format: 'simple', transports: ['console'] });
//	logger.info('runner registered', { runnerId: 'rnr_1' });
//
// in Go. Transports may add "file:/var/log/yggdrasil.log"; several fan out.
func Example() {
	logger, err := logging.New(logging.Config{
		Level:      logging.LevelInfo,
		Format:     logging.FormatSimple,
		Transports: []string{logging.TransportConsole},
	})
	if err != nil {
		panic(err)
	}
	logger.Info("runner registered", "runner_id", "rnr_1")
}

// NewTo writes to any io.Writer; here stdout, without the time, so that the
// output is deterministic.
func ExampleNewTo() {
	logger, err := logging.NewTo(logging.Config{Level: logging.LevelDebug, Format: logging.FormatJSON}, os.Stdout)
	if err != nil {
		panic(err)
	}
	logger = slog.New(withoutTime{logger.Handler()})
	logger.Debug("heartbeat", "runner_id", "rnr_1", "lease_epoch", 3)
	// Output:
	// {"level":"DEBUG","msg":"heartbeat","runner_id":"rnr_1","lease_epoch":3}
}

// withoutTime drops the record's time (a handler leaves a zero time out).
type withoutTime struct{ slog.Handler }

func (h withoutTime) Handle(ctx context.Context, r slog.Record) error {
	r.Time = time.Time{}
	return h.Handler.Handle(ctx, r)
}
