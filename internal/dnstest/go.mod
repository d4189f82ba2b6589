module github.com/go-lb/lb/internal/dnstest

go 1.22

replace github.com/go-lb/lb => ../..

require (
	github.com/go-lb/lb v0.0.0-00010101000000-000000000000
	github.com/miekg/dns v1.1.63
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/mod v0.18.0 // indirect
	golang.org/x/net v0.31.0 // indirect
	golang.org/x/sync v0.7.0 // indirect
	golang.org/x/sys v0.27.0 // indirect
	golang.org/x/tools v0.22.0 // indirect
)
