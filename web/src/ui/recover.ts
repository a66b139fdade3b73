// Recovery with the recovery code (docs/protocol.md §10.9): offered on the screen a
// new browser shows when its practitioner already has an identity, for one who has no
// other device left to link this browser from.
import { t } from "../i18n";
import { header } from "./chrome";
import { h } from "./dom";

export interface RecoverActions {
  back(): void;
  recover(code: string): void;
}

export function recoverView(actions: RecoverActions, error: string | null, busy: boolean, typed = ""): HTMLElement {
  const input = h("input", { id: "recovery-input", autocomplete: "off", autocapitalize: "characters", spellcheck: "false", required: true, maxlength: 80, disabled: busy });
  input.value = typed; // kept after an error, to be corrected rather than typed again
  return h(
    "section",
    { class: "screen link", "aria-labelledby": "screen-title" },
    header(t("recoverTitle"), busy ? null : actions.back),
    h("p", {}, t("recoverIntro")),
    error ? h("p", { role: "alert", class: "error", id: "recover-error" }, error) : null,
    busy ? h("p", { role: "status", id: "recover-progress" }, t("recoverBusy")) : null,
    h(
      "form",
      {
        class: "card",
        onsubmit: (event: Event) => {
          event.preventDefault();
          if (!busy) actions.recover(input.value);
        },
      },
      h("p", { class: "field" }, h("label", { for: "recovery-input" }, t("recoverCodeLabel")), input),
      h("button", { type: "submit", id: "recover-submit", disabled: busy }, t("recoverSubmit")),
    ),
  );
}
