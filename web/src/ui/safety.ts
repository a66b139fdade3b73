// The safety number with a contact: 60 digits to compare, a QR code to scan.
import qrcode from "qrcode-generator";
import type { SafetyNumber } from "../e2ee/safety";
import { t } from "../i18n";
import { header } from "./chrome";
import { h } from "./dom";

export function qrImage(payload: string, label: string): HTMLImageElement {
  const code = qrcode(0, "M");
  code.addData(payload);
  code.make();
  return h("img", { class: "qr", src: code.createDataURL(4, 4), alt: label, width: 220, height: 220 });
}

export function safetyView(name: string, number: SafetyNumber, verified: boolean, back: () => void, verify: () => void): HTMLElement {
  return h(
    "section",
    { class: "screen safety", "aria-labelledby": "screen-title" },
    header(`${t("safetyNumber")} — ${name}`, back),
    h("p", {}, t("safetyText")),
    h("p", { class: "safety-number", id: "safety-digits" }, number.digits),
    h("div", {}, qrImage(number.qrPayload, t("scanHint"))),
    verified ? h("p", { class: "status", id: "verified" }, `✓ ${t("verified")}`) : h("button", { type: "button", id: "mark-verified", onclick: verify }, t("markVerified")),
  );
}

export function recoveryView(code: string, done: () => void): HTMLElement {
  return h(
    "section",
    { class: "screen recovery", "aria-labelledby": "screen-title" },
    header(t("recoveryTitle"), null),
    h("p", {}, t("recoveryText")),
    h("p", { class: "recovery-code card", id: "recovery-code" }, code),
    h("button", { type: "button", id: "recovery-done", onclick: done }, t("recoveryDone")),
  );
}
