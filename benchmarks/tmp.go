package benchmarks

import (
	_ "github.com/bufbuild/httplb"
	_ "github.com/buraksezer/consistent"
	_ "github.com/dgryski/go-jump"
	_ "github.com/dgryski/go-maglev"
	_ "github.com/dgryski/go-rendezvous"
	_ "github.com/go-kit/kit/sd/lb"
	_ "github.com/go-lb/lb"
	_ "github.com/golang/groupcache/consistenthash"
	_ "github.com/lafikl/consistent"
	_ "github.com/serialx/hashring"
	_ "github.com/smallnest/weighted"
	_ "github.com/stathat/consistent"
)
