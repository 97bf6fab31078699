import { describe, expect, it } from 'vitest';
import { newClientMsgId } from './ids.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('client message ids', () => {
  it('uses crypto.randomUUID when there is one', () => {
    expect(newClientMsgId()).toMatch(UUID);
  });

  it('builds a v4 UUID from random bytes on insecure origins', () => {
    const id = newClientMsgId({ getRandomValues: (bytes) => bytes.fill(0xff) });
    expect(id).toMatch(UUID);
    expect(id.length).toBeLessThanOrEqual(64);
  });
});
