// Security alerts, in the user's words: a new device of theirs, a verified contact's
// keys that changed, a refused change of a room, a log that forked (blocking: it
// cannot be dismissed, the app sends nothing more).
import type { RelaisClient } from "../client/client";
import type { Alert } from "../client/model";
import { t } from "../i18n";
import { h } from "./dom";

function text(client: RelaisClient, alert: Alert): string {
  switch (alert.kind) {
    case "unknown_device":
      return t("alertOwnDevice", { name: `#${alert.subject}` });
    case "unknown_identity_key":
      return t("alertOwnIdentity");
    case "log_fork":
      return t("alertLogFork", { detail: alert.detail });
    case "history_damaged":
      return t("alertHistoryDamaged");
    case "key_changed":
    case "identity_changed":
      return t("alertKeyChanged", { name: client.nameOf(alert.subject) });
    default:
      return t("alertRefused", { reason: `${alert.kind} — ${alert.detail}` });
  }
}

const SHOWN = new Set(["unknown_device", "key_changed", "identity_changed", "bad_signature", "not_authorised", "bad_chain", "key_transparency", "withheld_state", "log_fork", "unknown_identity_key", "removed", "history_damaged"]);

export function alertsView(client: RelaisClient, room: number | null): HTMLElement | null {
  const alerts = client.data.alerts.filter((a) => SHOWN.has(a.kind) && (room === null || a.room === room || a.room === null));
  if (!alerts.length) return null;
  // A fork of the log blocks the app: its alert stays first, whatever came after.
  const shown = [...alerts.filter((a) => a.kind === "log_fork").slice(0, 1), ...alerts.filter((a) => a.kind !== "log_fork").slice(-5)];
  return h(
    "section",
    { class: "alerts", "aria-label": t("errorTitle") },
    shown.map((alert) =>
      h(
        "div",
        { class: "alert", role: "alert", "data-kind": alert.kind },
        h("p", {}, text(client, alert)),
        alert.kind === "unknown_device" ? h("button", { type: "button", class: "secondary", onclick: () => client.approveDevice(Number(alert.subject)) }, t("itsMine")) : null,
        alert.kind === "key_changed"
          ? h("button", { type: "button", class: "secondary", onclick: () => void client.acceptKeyChange(alert.subject).then(() => client.dismissAlert(alert.id)) }, t("acceptChange"))
          : null,
        alert.kind === "log_fork" ? null : h("button", { type: "button", class: "secondary", onclick: () => client.dismissAlert(alert.id) }, t("dismiss")),
      ),
    ),
  );
}
