// The web client's entry point (docs/web.md).
import "./styles.css";
import { readConfig } from "./config";
import { language, setLanguage } from "./i18n";
import { App } from "./ui/app";

setLanguage(language());
const root = document.getElementById("app");
if (root) void new App(root, readConfig()).start();

if ("serviceWorker" in navigator) {
  void navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => undefined);
}
