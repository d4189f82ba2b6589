module github.com/go-lb/lb/discovery/zookeeper

go 1.22

replace github.com/go-lb/lb => ../..

require (
	github.com/go-lb/lb v0.0.0-00010101000000-000000000000
	github.com/go-zookeeper/zk v1.0.4
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
