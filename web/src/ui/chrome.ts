// What every screen shares: its title bar, with a way back and the language switch.
import { h } from "./dom";
import { language, setLanguage, t } from "../i18n";

let onLanguageChange: () => void = () => undefined;

export function whenLanguageChanges(render: () => void): void {
  onLanguageChange = render;
}

export function header(title: string, back: (() => void) | null, id = "screen-title", extra: Node[] = []): HTMLElement {
  const switcher = h(
    "select",
    {
      "aria-label": t("language"),
      class: "language",
      onchange: (event: Event) => {
        const value = (event.target as HTMLSelectElement).value;
        setLanguage(value === "en" ? "en" : "fr");
        onLanguageChange();
      },
    },
    h("option", { value: "fr", selected: language() === "fr" }, "Français"),
    h("option", { value: "en", selected: language() === "en" }, "English"),
  );
  return h(
    "header",
    { class: "bar" },
    back ? h("button", { type: "button", class: "back", onclick: back, "aria-label": t("back") }, "←") : null,
    h("h1", { id }, title),
    ...extra,
    switcher,
  );
}
