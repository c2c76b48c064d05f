"""arbiter.v1 wire contract: .proto sources and the stubs ./scripts/gen-protos generates from them."""
