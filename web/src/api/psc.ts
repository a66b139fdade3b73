// Pro Santé Connect for the web client (docs/identity.md): the app makes a PKCE pair,
// sends the browser to Relais' start URL with this page as the way back (the operator
// registers it in RELAIS_PSC_CLIENT_REDIRECT_URIS), then redeems the one-time code with
// its verifier for a device token.
import { b64u, randomBytes, utf8 } from "../e2ee/bytes";
import { sha256 } from "../e2ee/primitives";
import { Api, type DevLogin } from "./http";

const PENDING = "relais.psc";
const DEVICE_NAME = "Navigateur";

interface Pending {
  verifier: string;
  state: string;
}

/** A situation d'exercice PSC gives for the practitioner (mobile_api: PscActivityOut). */
export interface PscActivity {
  structure_name: string;
  brand: string;
  postcode: string;
  structure_id: string;
  sector_code: string;
  mode_code: string;
}

export interface PscLogin extends DevLogin {
  activities: PscActivity[];
  /** Chosen already when PSC gives one activity; null when the user must choose. */
  activity: PscActivity | null;
}

/** Why the way back from PSC gave no device token. ``code``: a stable error code of
 * Relais (chat/errors.py), or ``state_mismatch`` when the answer does not belong to the
 * login this tab started. The app shows its own words for it, never the URL's text. */
export class PscLoginError extends Error {
  constructor(readonly code: PscErrorCode) {
    super(code);
    this.name = "PscLoginError";
  }
}

/** The codes the callback may send back (docs/identity.md), and the app's own. */
const KNOWN_ERRORS = [
  "psc_provider_error",
  "psc_state_mismatch",
  "psc_nonce_mismatch",
  "psc_acr_insufficient",
  "psc_token_invalid",
  "psc_token_expired",
  "psc_login_expired",
  "psc_identity_refused",
  "not_in_directory",
  "state_mismatch",
] as const;
export type PscErrorCode = (typeof KNOWN_ERRORS)[number];

function knownError(code: string): PscErrorCode {
  return (KNOWN_ERRORS as readonly string[]).includes(code) ? (code as PscErrorCode) : "psc_provider_error";
}

export function returnUri(): string {
  return `${location.origin}/`;
}

export async function startPscLogin(): Promise<void> {
  const verifier = b64u(randomBytes(48));
  const state = b64u(randomBytes(16));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state } satisfies Pending));
  const challenge = b64u(await sha256(utf8(verifier)));
  const query = new URLSearchParams({ code_challenge: challenge, redirect_uri: returnUri(), state, device_name: DEVICE_NAME });
  location.assign(`/api/v1/auth/psc/start?${query.toString()}`);
}

/** The device token when this page is the way back from PSC, else null; a
 * PscLoginError when PSC or Relais refused the login, or when the answer is not for the
 * login this tab started (its ``state`` differs: the code is then never redeemed). */
export async function finishPscLogin(api: Api): Promise<PscLogin | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return null;
  // The one-time code or the error leaves the address bar (and the history) at once.
  history.replaceState(null, "", "/");
  const pending = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (!pending) return null; // not a login this tab started: nothing to finish
  const { verifier, state } = JSON.parse(pending) as Pending;
  if (params.get("state") !== state) throw new PscLoginError("state_mismatch");
  if (error || !code) throw new PscLoginError(knownError(error ?? ""));
  return api.post<PscLogin>("auth/psc/token", { code, code_verifier: verifier, device_name: DEVICE_NAME });
}

/** Record the activity the practitioner acts in on this new device (its token). */
export async function chooseActivity(token: string, index: number): Promise<void> {
  await new Api(token).post("auth/psc/activity", { index });
}
