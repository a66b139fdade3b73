// The end-to-end encryption protocol (docs/protocol.md §10): no DOM access here, only
// bytes in and bytes out, tested on the shared vectors (tests/vectors/).
export {};
