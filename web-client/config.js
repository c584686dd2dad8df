// The web client's one setting: where the Circle server (HTTP API and websocket) is.
//
// By default the server is on the same host as this page, at port 7700, which is what `make run`
// gives. Behind a reverse proxy that serves both the page and the server from one origin, set it to
// that origin instead, e.g. `export const SERVER_URL = 'https://circle.example.org';`.
export const SERVER_URL = `${location.protocol}//${location.hostname}:7700`;
