package report_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/report"
)

func TestLastReport(t *testing.T) {
	t.Parallel()
	var got [][]lb.Endpoint
	update := func(eps []lb.Endpoint) error {
		got = append(got, eps)
		return nil
	}
	a := []lb.Endpoint{{Addr: "10.0.0.1:80", Labels: map[string]string{"zone": "a"}}}
	tests := []struct {
		name string
		give []lb.Endpoint
		want bool
	}{
		{"the first set, empty", []lb.Endpoint{}, true},
		{"the same empty set", nil, false},
		{"a change", a, true},
		{"equal: weight 0 is 1", []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 1, Labels: map[string]string{"zone": "a"}}}, false},
		{"a label change", []lb.Endpoint{{Addr: "10.0.0.1:80", Labels: map[string]string{"zone": "b"}}}, true},
	}
	var last report.Last
	for _, tt := range tests {
		sent, err := last.Report(tt.give, update)
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, sent, tt.name)
	}
	require.Len(t, got, 3)
	assert.NotNil(t, got[0], "an empty set is handed on as an empty slice")
	assert.Equal(t, a, got[1])
	got[1][0].Labels["zone"] = "changed"
	assert.Equal(t, "a", a[0].Labels["zone"], "update was handed the resolver's own labels")
}

func TestLastReportUpdateError(t *testing.T) {
	t.Parallel()
	errStop := errors.New("stop")
	var last report.Last
	eps := []lb.Endpoint{{Addr: "10.0.0.1:80"}}
	sent, err := last.Report(eps, func([]lb.Endpoint) error { return errStop })
	assert.False(t, sent)
	var ue report.UpdateError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, errStop, ue.Err)
	assert.Equal(t, "stop", err.Error())
	sent, err = last.Report(eps, func([]lb.Endpoint) error { return nil })
	require.NoError(t, err)
	assert.True(t, sent, "a set update refused was not handed on")
}
