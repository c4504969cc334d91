@0xd3c5a1f0b2e4c6a8;
# Test-only schema for exercising Cap'n Proto RPC over the Asio bridge.
interface Echo {
  echo @0 (s :Text) -> (s :Text);
  blob @1 (size :UInt32) -> (data :Data);
}
