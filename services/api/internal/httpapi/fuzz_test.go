package httpapi

import (
	"errors"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// decodeAndValidate runs what a route does with a body: decode, then
// validate. kind picks the payload type.
func decodeAndValidate(kind byte, body []byte) error {
	switch kind % 7 {
	case 0:
		var p wire.RegisterRunnerPayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.Register(&p)
	case 1:
		var p wire.HeartbeatPayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.Heartbeat(&p)
	case 2:
		var p wire.DispatchTaskPayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.Dispatch(&p)
	case 3:
		var p wire.TaskUpdatePayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.TaskUpdate(&p)
	case 4:
		var p wire.UpdateRunnerPayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.Update(&p)
	case 5:
		var p wire.OfflinePayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.Offline(&p)
	default:
		var p wire.RequestUpdatePayload
		if err := Decode(body, &p); err != nil {
			return err
		}
		return validate.RequestUpdate(&p)
	}
}

// FuzzDecodePayloads: no body makes decoding or validation panic, and every
// rejection is one of the two error types the error handler maps to 400/422.
func FuzzDecodePayloads(f *testing.F) {
	seeds := []string{
		`{"name":"r","version":"1.0.0","realm":"eu","labels":{"os":"linux"},"capacity":4,"endpoint":"http://10.0.0.1:8080"}`,
		`{"runnerId":"r1","leaseEpoch":3,"status":"busy","resources":{"cpuPercent":12.5,"memoryPercent":40,"loadAvg":[0.1,0.2]},"tasksRunning":2,"version":"1.0.0"}`,
		`{"type":"shell","payload":{"cmd":["echo","hi"]},"timeoutMs":60000}`,
		`{"status":"succeeded","result":{"exit":0},"leaseEpoch":1}`,
		`{"runnerId":"r1","endpoint":"https://x"}`,
		`{"runnerId":"r1","reason":"bye"}`,
		`{"version":"2.0.0","command":"upgrade"}`,
		``, `null`, `[]`, `{"name":`, `{"capacity":1e400}`, `{"labels":{"a":1}}`, `{"a":"\ud800"}`, `{} {}`,
		`{"resources":{"cpuPercent":-1}}`, "{\"name\":\"\x00\"}",
	}
	for i, s := range seeds {
		f.Add(byte(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		err := decodeAndValidate(kind, body)
		if err == nil {
			return
		}
		var verr *validate.Error
		var berr *BadRequestError
		if !errors.As(err, &verr) && !errors.As(err, &berr) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if verr != nil && verr.Field == "" {
			t.Fatalf("validation error without field: %v", err)
		}
	})
}
