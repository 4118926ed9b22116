package limit

// Key is the Redis key s keeps b's window in, for tests that inspect Redis directly.
func (s *RedisStore) Key(b Budget) string { return storageKey(s.prefix, s.buckets, b) }
