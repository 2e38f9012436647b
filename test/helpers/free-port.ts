/** A TCP port on 127.0.0.1 that was free a moment ago (for processes that must listen on a known port). */
export { freePort } from '../../src/demo/private-redis.js';
