import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsUnavailableReason, SocketChild } from '../helpers/netns.js';

const skip = netnsUnavailableReason();

describe.skipIf(skip !== null)(`socket child in a private netns${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('shows a listener with the option the child set', async () => {
    const listener = await child.run<{ local: [string, number] }>({
      op: 'listen',
      id: 'L',
      options: [[1, 9, 1]], // SO_KEEPALIVE
    });
    const { stdout, status } = child.knetstat(['tcp']);
    expect(status).toBe(0);
    const row = stdout.split('\n').find((line) => line.includes(`127.0.0.1:${listener.local[1]} `));
    expect(row).toContain('SO_KEEPALIVE=1');
  });
});
