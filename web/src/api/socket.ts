// The WebSocket of docs/protocol.md §1–8: authenticate with an ``auth`` frame (browsers
// cannot set headers), reconnect with a growing delay, and hand every frame on.
export type Frame = Record<string, unknown> & { type: string };

export interface SocketEvents {
  ready(frame: Frame): Promise<void>;
  frame(frame: Frame): Promise<void>;
  status(state: "online" | "connecting" | "offline"): void;
  closed(code: number): void;
  /** The server refused this device's token (4001 before ``ready``) or closed for its
   * revocation (4010): the socket does not reconnect by itself; ``resume`` it. */
  refused(code: number): void;
}

const MAX_DELAY_MS = 15_000;

export class Socket {
  private ws: WebSocket | null = null;
  private delay = 500;
  private stopped = false;
  private refusedToken = false;
  private queue: Promise<void> = Promise.resolve();
  private timer: number | undefined;

  constructor(
    private readonly token: () => string,
    private readonly events: SocketEvents,
  ) {}

  get open(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
    globalThis.addEventListener("online", this.wake);
    globalThis.addEventListener("offline", this.drop);
  }

  stop(): void {
    this.stopped = true;
    this.refusedToken = false;
    globalThis.removeEventListener("online", this.wake);
    globalThis.removeEventListener("offline", this.drop);
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }

  /** Connect again after a refusal (``refused``) that turned out not to be one. */
  resume(): void {
    if (!this.refusedToken) return;
    this.refusedToken = false;
    this.start();
  }

  send(frame: Frame): boolean {
    if (!this.open) return false;
    this.ws!.send(JSON.stringify(frame));
    return true;
  }

  /** The network is gone: close now rather than wait for a timeout; reconnect (and
   * catch up) when it is back. */
  private readonly drop = (): void => {
    clearTimeout(this.timer);
    this.ws?.close(4000);
  };

  private readonly wake = (): void => {
    if (!this.ws && !this.stopped) {
      clearTimeout(this.timer);
      this.delay = 500;
      this.connect();
    }
  };

  private connect(): void {
    if (this.stopped) return;
    this.events.status("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/v1/`);
    this.ws = ws;
    let ready = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token() }));
    ws.onmessage = (event: MessageEvent<string>) => {
      let frame: Frame;
      try {
        frame = JSON.parse(event.data) as Frame;
      } catch {
        return;
      }
      // Frames are handled one after the other, in the order they came.
      this.queue = this.queue.then(async () => {
        try {
          if (frame.type === "ready") {
            ready = true;
            this.delay = 500;
            await this.events.ready(frame);
            this.events.status("online");
          } else {
            await this.events.frame(frame);
          }
        } catch (error) {
          console.error("frame", frame.type, error);
        }
      });
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.ws === ws) this.ws = null;
      this.events.closed(event.code);
      if (this.stopped) {
        this.events.status("offline");
        return;
      }
      if (event.code === 4010 || (event.code === 4001 && !ready)) {
        this.stopped = true; // no reconnection, not even when the network comes back
        this.refusedToken = true;
        this.events.status("offline");
        this.events.refused(event.code);
        return;
      }
      this.events.status(navigator.onLine ? "connecting" : "offline");
      if (!navigator.onLine) return; // the "online" event reconnects
      this.timer = setTimeout(() => this.connect(), this.delay) as unknown as number;
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    };
  }
}
