// Pro Santé Connect for the web client (docs/identity.md): the app makes a PKCE pair,
// sends the browser to Relais' start URL with this page as the way back (the operator
// registers it in RELAIS_PSC_CLIENT_REDIRECT_URIS), then redeems the one-time code with
// its verifier for a device token.
import { b64u, randomBytes, utf8 } from "../e2ee/bytes";
import { sha256 } from "../e2ee/primitives";
import type { Api, DevLogin } from "./http";

const PENDING = "relais.psc";

interface Pending {
  verifier: string;
  state: string;
}

export function returnUri(): string {
  return `${location.origin}/`;
}

export async function startPscLogin(): Promise<void> {
  const verifier = b64u(randomBytes(48));
  const state = b64u(randomBytes(16));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state } satisfies Pending));
  const challenge = b64u(await sha256(utf8(verifier)));
  const query = new URLSearchParams({ code_challenge: challenge, redirect_uri: returnUri(), state, device_name: "Navigateur" });
  location.assign(`/api/v1/auth/psc/start?${query.toString()}`);
}

/** The device token when this page is the way back from PSC, else null. */
export async function finishPscLogin(api: Api): Promise<DevLogin | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const pending = sessionStorage.getItem(PENDING);
  if (!code || !pending) return null;
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", "/");
  const { verifier, state } = JSON.parse(pending) as Pending;
  if (params.get("state") !== state) throw new Error("state mismatch");
  return api.post<DevLogin>("auth/psc/token", { code, code_verifier: verifier, device_name: "Navigateur" });
}
