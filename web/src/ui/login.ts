// The login screen: the development login (embedded mode, DEBUG servers) and Pro Santé
// Connect when the server has it.
import { h } from "./dom";
import { t } from "../i18n";
import type { ServerConfig } from "../config";
import { header } from "./chrome";

export interface LoginActions {
  devLogin(nationalId: string, passphrase: string): void;
  psc(passphrase: string): void;
}

export function loginView(config: ServerConfig, actions: LoginActions, error: string | null): HTMLElement {
  const nationalId = h("input", {
    id: "national-id",
    name: "national_id",
    inputmode: "numeric",
    autocomplete: "username",
    required: true,
    pattern: "[0-9A-Za-z]{8,20}",
    maxlength: 20,
  });
  const passphrase = h("input", {
    id: "passphrase",
    name: "passphrase",
    type: "password",
    autocomplete: "current-password",
    required: true,
    minlength: 8,
    maxlength: 200,
  });
  const passphraseField = h(
    "p",
    { class: "field" },
    h("label", { for: "passphrase" }, t("passphraseLabel")),
    passphrase,
    h("small", {}, t("passphraseHint")),
  );
  const form = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "login-title",
      onsubmit: (event: Event) => {
        event.preventDefault();
        actions.devLogin(nationalId.value.trim(), passphrase.value);
      },
    },
    h("p", { class: "field" }, h("label", { for: "national-id" }, t("devLoginLabel")), nationalId),
    passphraseField,
    h("button", { type: "submit", id: "dev-login" }, t("devLoginButton")),
  );
  const psc = h(
    "button",
    {
      type: "button",
      id: "psc-login",
      onclick: () => {
        if (passphrase.reportValidity()) actions.psc(passphrase.value);
      },
    },
    t("pscButton"),
  );
  return h(
    "section",
    { class: "screen login" },
    header(t("loginTitle"), null, "login-title"),
    h("p", {}, t("loginIntro")),
    error ? h("p", { role: "alert", class: "error" }, error) : null,
    config.devLogin ? form : null,
    config.psc && !config.devLogin ? h("div", { class: "card" }, passphraseField, psc) : null,
    config.psc && config.devLogin ? psc : null,
    !config.devLogin && !config.psc ? h("p", {}, t("noLogin")) : null,
  );
}

/** ``note``: why the passphrase is asked now, when it is not the app's opening. */
export function unlockView(name: string, unlock: (passphrase: string) => void, logout: () => void, error: string | null, note: string | null = null): HTMLElement {
  const passphrase = h("input", { id: "passphrase", name: "passphrase", type: "password", autocomplete: "current-password", required: true, maxlength: 200 });
  return h(
    "section",
    { class: "screen login" },
    header(t("unlockTitle"), null, "login-title"),
    h("p", {}, t("unlockIntro", { name })),
    note ? h("p", { role: "status", id: "unlock-note" }, note) : null,
    error ? h("p", { role: "alert", class: "error" }, error) : null,
    h(
      "form",
      {
        class: "card",
        onsubmit: (event: Event) => {
          event.preventDefault();
          unlock(passphrase.value);
        },
      },
      h("p", { class: "field" }, h("label", { for: "passphrase" }, t("passphraseLabel")), passphrase),
      h("button", { type: "submit", id: "unlock" }, t("unlockButton")),
    ),
    h("p", {}, h("button", { type: "button", class: "secondary", id: "logout", onclick: logout }, t("logout"))),
  );
}
