// The REST API (docs/api.md): JSON over fetch, authenticated by the device token.
import { ApiError, NetworkError, errorFromResponse } from "./errors";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface DevLogin {
  token: string;
  device: number;
  practitioner: {
    national_id: string;
    first_name: string;
    last_name: string;
    profession_code: string;
  };
}

const API = "/api/v1/";
const TIMEOUT_MS = 20_000;

export class Api {
  /** Called when the server refuses the token this Api holds (401): it expired, or the
   * device was revoked (docs/web.md, "When the session ends"). */
  onUnauthorized: (() => void) | null = null;

  constructor(private token: string | null = null) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  get authenticated(): boolean {
    return this.token !== null;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      throw new NetworkError(String(error));
    }
    if (!response.ok) {
      const error = await errorFromResponse(response);
      if (response.status === 401 && this.token !== null && headers.Authorization === `Bearer ${this.token}`) this.onUnauthorized?.();
      throw error;
    }
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  devLogin(nationalId: string, deviceName: string): Promise<DevLogin> {
    return this.post<DevLogin>("auth/dev-login", {
      national_id: nationalId,
      device_name: deviceName,
    });
  }

  async logout(): Promise<void> {
    try {
      await this.post("auth/logout");
    } catch (error) {
      // Logged out already (token revoked or expired): the local wipe goes on.
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
    }
  }
}
