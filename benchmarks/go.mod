module github.com/go-lb/lb/benchmarks

go 1.24

replace github.com/go-lb/lb => ../

require (
	github.com/bufbuild/httplb v0.4.1
	github.com/buraksezer/consistent v0.10.0
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/dgryski/go-jump v0.0.0-20170409065014-e1f439676b57
	github.com/dgryski/go-maglev v0.0.0-20200611225407-8961b9b1b8e6
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f
	github.com/go-kit/kit v0.13.0
	github.com/go-lb/lb v0.0.0-00010101000000-000000000000
	github.com/golang/groupcache v0.0.0-20241129210726-2c02b8208cf8
	github.com/lafikl/consistent v0.0.0-20220512074542-bdd3606bfc3e
	github.com/serialx/hashring v0.0.0-20200727003509-22c0c7ab6b1b
	github.com/smallnest/weighted v0.0.0-20230419055410-36b780e40a7a
	github.com/stathat/consistent v1.0.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/dchest/siphash v1.2.3 // indirect
	github.com/go-kit/log v0.2.0 // indirect
	github.com/go-logfmt/logfmt v0.5.1 // indirect
	github.com/minio/blake2b-simd v0.0.0-20160723061019-3f5f724cb5b1 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/exp v0.0.0-20200119233911-0405dc783f0a // indirect
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/sync v0.12.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	stathat.com/c/consistent v1.0.0 // indirect
)
