// The waits the page's peer connections share, whichever end it plays
// (receive.js as a downloader, seed.js as a seed or the sending host): one
// definition, so the page's two ends cannot drift apart.

/** How long one message of the password handshake (CPace) may take. */
export const HANDSHAKE_TIMEOUT_MS = 10000;

/** ICE's bound, as the CLI's connect timeout (lane's): after it, no path. */
export const CONNECT_TIMEOUT_MS = 15000;
