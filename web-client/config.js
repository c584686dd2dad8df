// The web client's settings. Only SERVER_URL is needed; the others are optional.
//
// SERVER_URL: where the Circle server (HTTP API and websocket) is. By default the server is on the
// same host as this page, at port 7700, which is what `make run` gives. Behind a reverse proxy that
// serves both the page and the server from one origin, set it to that origin instead, e.g.
// `export const SERVER_URL = 'https://circle.example.org';`.
export const SERVER_URL = `${location.protocol}//${location.hostname}:7700`;

// SUPPORT_TEXT and SUPPORT_URL: your organisation's own support line or resources, shown on the
// screens where a meeting ends for someone (removed, not let in, the meeting ended, left). Leave
// SUPPORT_TEXT empty to show nothing; without SUPPORT_URL the text shows without a link. E.g.
//   export const SUPPORT_TEXT = 'Need to talk now? Call our helpline, day and night: 0800 000 000.';
//   export const SUPPORT_URL = 'https://example.org/support';
export const SUPPORT_TEXT = '';
export const SUPPORT_URL = '';
