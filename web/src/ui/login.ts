// The login screen: the development login (embedded mode, DEBUG servers) and Pro Santé
// Connect when the server has it; after a PSC login for a practitioner PSC gives several
// places of practice, the choice of the one this device acts in.
import type { PscActivity } from "../api/psc";
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

/** Which of the places of practice PSC gives the practitioner acts in on this device
 * (docs/identity.md: ``auth/psc/activity``). */
export function activityView(name: string, activities: PscActivity[], choose: (index: number) => void, error: string | null, busy: boolean): HTMLElement {
  return h(
    "section",
    { class: "screen login", "aria-labelledby": "login-title" },
    header(t("activityTitle"), null, "login-title"),
    h("p", {}, t("activityIntro", { name })),
    error ? h("p", { role: "alert", class: "error", id: "activity-error" }, error) : null,
    h(
      "ul",
      { class: "room-list", id: "activity-list" },
      activities.map((activity, index) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "room", "data-activity": index, disabled: busy, onclick: () => choose(index) },
            h("span", { class: "room-name" }, activity.structure_name || activity.brand || t("activityUnnamed", { id: activity.structure_id })),
            activity.postcode ? h("span", { class: "room-when" }, t("activityPostcode", { postcode: activity.postcode })) : null,
          ),
        ),
      ),
    ),
  );
}
