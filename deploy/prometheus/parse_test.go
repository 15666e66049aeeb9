package prometheus

import (
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestX(t *testing.T) { _ = rulefmt.Parse; _ = parser.ParseExpr }
