"""One harness for the tests, the fakes and the benches: ports, a real hone server in a thread,
uploads through the SDK, and waiting on jobs. Nothing here fakes a component; the fakes live
in tests/fakes and say so."""
