// When the server no longer takes this browser's device token (client/session.ts): a
// banner on the rooms list and in each conversation, and the screen to log in again.
import type { RelaisClient } from "../client/client";
import type { ServerConfig } from "../config";
import { t } from "../i18n";
import { header } from "./chrome";
import { h } from "./dom";

export interface SessionActions {
  relogin(): void;
  erase(): void;
}

/** What to say while the token is refused; null while it is taken. */
export function sessionBanner(client: RelaisClient, actions: SessionActions): HTMLElement | null {
  switch (client.session) {
    case "active":
      return null;
    case "checking":
      return h("p", { class: "status", id: "session", "data-session": "checking", role: "status" }, t("sessionChecking"));
    case "ended":
      return h(
        "div",
        { class: "alert", id: "session", "data-session": "ended", role: "alert" },
        h("p", {}, t("sessionEnded")),
        h("button", { type: "button", id: "relogin", onclick: actions.relogin }, t("reloginButton")),
      );
    case "removed":
      return h(
        "div",
        { class: "alert", id: "session", "data-session": "removed", role: "alert" },
        h("p", {}, t("deviceRemoved")),
        h("button", { type: "button", class: "secondary", id: "erase-browser", onclick: actions.erase }, t("eraseBrowser")),
      );
  }
}

export interface ReloginActions {
  devLogin(nationalId: string): void;
  psc(): void;
  back(): void;
}

/** Log in again as the practitioner this browser holds: no passphrase (the vault is
 * open), and the national id is theirs. */
export function reloginView(config: ServerConfig, who: { name: string; nationalId: string }, actions: ReloginActions, error: string | null, busy: boolean): HTMLElement {
  const nationalId = h("input", { id: "national-id", name: "national_id", autocomplete: "username", value: who.nationalId, readonly: true });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: (event: Event) => {
        event.preventDefault();
        actions.devLogin(nationalId.value.trim());
      },
    },
    h("p", { class: "field" }, h("label", { for: "national-id" }, t("devLoginLabel")), nationalId),
    h("button", { type: "submit", id: "dev-login", disabled: busy }, t("devLoginButton")),
  );
  return h(
    "section",
    { class: "screen login" },
    header(t("reloginTitle"), actions.back, "login-title"),
    h("p", {}, t("reloginIntro", { name: who.name })),
    error ? h("p", { role: "alert", class: "error", id: "relogin-error" }, error) : null,
    busy ? h("p", { class: "status", role: "status" }, t("reloginBusy")) : null,
    config.devLogin ? form : null,
    config.psc ? h("button", { type: "button", id: "psc-login", disabled: busy, onclick: actions.psc }, t("pscButton")) : null,
    !config.devLogin && !config.psc ? h("p", {}, t("noLogin")) : null,
  );
}
