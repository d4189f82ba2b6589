package main

import (
	"fmt"
	"math"
	"strings"

	bm "github.com/go-lb/lb/benchmarks"
)

// keysDesc says how many keys the quality report used at each size.
func keysDesc(base int) string {
	var parts []string
	for _, n := range bm.QualitySizes {
		parts = append(parts, fmt.Sprintf("%s keys at N=%d", thousands(bm.KeysFor(n, base)), n))
	}
	return strings.Join(parts, ", ")
}

func mode(par bool) string {
	if par {
		return "parallel"
	}
	return "serial"
}

func bold(s string, b bool) string {
	if b {
		return "**" + s + "**"
	}
	return s
}

func fmtNs(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return thousands(int(math.Round(v)))
	}
}

func fmtUs(ns float64) string { return fmt.Sprintf("%.1f", ns/1000) }

func fmtRatio(r float64) string { return fmt.Sprintf("%.2f", r) }

// fmtRatio3 formats a ratio close to 1 with three decimals.
func fmtRatio3(r float64) string { return fmt.Sprintf("%.3f", r) }

func pct(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f < 0.0001:
		return fmt.Sprintf("%.4f%%", 100*f)
	default:
		return fmt.Sprintf("%.2f%%", 100*f)
	}
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
