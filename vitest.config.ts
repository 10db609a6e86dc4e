import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests spawn processes in private network namespaces; give them room
    // on a 2-core machine. No test asserts a duration.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
