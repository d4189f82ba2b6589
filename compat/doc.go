// Package compat checks lb's compatibility rings (lb.Ring's Compat schemes)
// key for key against the real implementations: groupcache's
// consistenthash and stathat/consistent as libraries, and grpc-go's
// ring_hash policy driven over loopback gRPC servers. It is a module of its
// own so that lb's root module depends on none of them. (nginx is checked
// by the root module's TestNginxGolden, against placements a real nginx
// made: see nginx/gen-golden.sh.)
package compat
