// The app's texts in French (first) and English. The language is the user's choice,
// else the browser's when it prefers English, else French.
import { en } from "./en";
import { fr, type MessageKey, type Messages } from "./fr";

export type Language = "fr" | "en";
const catalogs: Record<Language, Messages> = { fr, en };
const STORAGE_KEY = "relais.language";

let current: Language = initialLanguage();

function initialLanguage(): Language {
  const chosen = globalThis.localStorage?.getItem(STORAGE_KEY);
  if (chosen === "fr" || chosen === "en") return chosen;
  const preferred = globalThis.navigator?.language ?? "fr";
  return preferred.toLowerCase().startsWith("en") ? "en" : "fr";
}

export function language(): Language {
  return current;
}

export function setLanguage(next: Language): void {
  current = next;
  globalThis.localStorage?.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
}

/** The text for ``key`` in the current language, with ``{name}`` placeholders filled. */
export function t(key: MessageKey, values: Record<string, string | number> = {}): string {
  return catalogs[current][key].replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in values ? String(values[name]) : whole,
  );
}

/** A server error in the current language: its French or English message, and its code. */
export function errorText(error: { code: string; message: string; messageFr: string }): string {
  return `${current === "fr" ? error.messageFr : error.message} (${error.code})`;
}

export type { MessageKey };
