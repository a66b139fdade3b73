// The app: which screen shows, and the actions that move between screens. Views only
// render what they are given; the protocol lives in e2ee/ and client/, the transport
// in api/.
import { ApiError, NetworkError } from "../api/errors";
import { Api, type DevLogin } from "../api/http";
import { chooseActivity, finishPscLogin, type PscErrorCode, type PscLogin, PscLoginError, startPscLogin } from "../api/psc";
import { IdentityExistsError, type PendingLink, RecoveryError, RelaisClient, ReloginError } from "../client/client";
import type { VaultData } from "../client/model";
import { Vault, WrongPassphrase } from "../client/vault";
import { lockWorker, registerPushAgain, unlockWorker } from "../push/page";
import { forgetNotifications } from "./notifications";
import type { ServerConfig } from "../config";
import type { SafetyNumber } from "../e2ee/safety";
import { errorText, t } from "../i18n";
import * as db from "../store/db";
import { whenLanguageChanges } from "./chrome";
import { connectionStatus, ConversationScreen } from "./conversation";
import { type DeviceRow, devicesView, linkApproveView, linkWaitView } from "./devices";
import { h, replace } from "./dom";
import { activityView, loginView, unlockView } from "./login";
import { careTeamView, type Practitioner, searchDirectory, searchView } from "./people";
import { roomsView, type RoomSummary } from "./rooms";
import { qrImage, recoveryView, safetyView } from "./safety";
import { alertsView } from "./alerts";
import { recoverView } from "./recover";
import { reloginView, sessionBanner, type SessionActions } from "./session";
import { TeleexpertiseScreen } from "./teleexpertise/screen";

type Screen =
  | { name: "loading" }
  | { name: "login"; error: string | null }
  | { name: "unlock"; who: string; error: string | null }
  | { name: "relogin"; error: string | null; busy: boolean }
  | { name: "recovery"; code: string }
  | { name: "rooms" }
  | { name: "room"; room: number; screen: ConversationScreen }
  | { name: "search"; query: string; results: Practitioner[] | null; message: string | null }
  | { name: "care-team"; error: string | null }
  | { name: "devices"; devices: DeviceRow[] | null; error: string | null }
  | { name: "activity"; login: PscLogin; error: string | null; busy: boolean }
  | { name: "safety"; peer: string; number: SafetyNumber }
  | { name: "link-wait"; shortCode: string; qrPayload: string }
  | { name: "recover"; error: string | null; busy: boolean; typed?: string }
  | { name: "link-approve"; found: Awaited<ReturnType<RelaisClient["linkRequestFor"]>> | null; error: string | null }
  | { name: "teleexpertise"; screen: TeleexpertiseScreen };

const WHO_KEY = "relais.who"; // the practitioner's name on the unlock screen (not a secret)
const PSC_PASSPHRASE = "relais.psc-passphrase";
const PSC_RELOGIN = "relais.psc-relogin"; // this tab went to PSC to log in again (ui/session.ts)

export class App {
  private readonly api = new Api();
  private client: RelaisClient | null = null;
  private screen: Screen = { name: "loading" };
  private typingSent = false;
  // A login again through Pro Santé Connect, back before the vault was unlocked: it is
  // finished once the passphrase opens the vault (client/session.ts).
  private relogin: DevLogin | null = null;
  // The PSC login waiting for its practitioner to choose a place of practice.
  private activityChosen: (() => void) | null = null;
  private readonly sessionActions: SessionActions = {
    relogin: () => this.show({ name: "relogin", error: null, busy: false }),
    erase: () => void this.logout(),
  };
  // A new browser of a practitioner who has an identity: linked from another device,
  // or recovered with the code; whichever comes first (the other is then dropped).
  private joining: { vault: Vault; info: { token: string; device: number; nationalId: string; displayName: string }; pending: PendingLink; busy: boolean } | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly config: ServerConfig,
  ) {
    whenLanguageChanges(() => this.render());
    globalThis.addEventListener("popstate", () => {
      if (this.client && this.screen.name !== "rooms") this.showRooms();
    });
  }

  async start(): Promise<void> {
    this.render();
    const passphrase = sessionStorage.getItem(PSC_PASSPHRASE);
    sessionStorage.removeItem(PSC_PASSPHRASE);
    const relogin = sessionStorage.getItem(PSC_RELOGIN) === "1";
    sessionStorage.removeItem(PSC_RELOGIN);
    const exists = await Vault.exists();
    try {
      const login = await finishPscLogin(this.api);
      if (login) await this.chooseActivity(login);
      if (login && relogin && exists) this.relogin = login;
      else if (login && passphrase) return await this.register(login, passphrase);
    } catch (error) {
      return this.show(exists ? { name: "unlock", who: localStorage.getItem(WHO_KEY) ?? "", error: this.describe(error) } : { name: "login", error: this.describe(error) });
    }
    if (exists) {
      this.show({ name: "unlock", who: localStorage.getItem(WHO_KEY) ?? "", error: null });
    } else {
      this.show({ name: "login", error: null });
    }
  }

  private show(screen: Screen): void {
    this.screen = screen;
    this.render();
  }

  private render(): void {
    const screen = this.screen;
    const client = this.client;
    let view: Node;
    switch (screen.name) {
      case "loading":
        view = h("p", {}, t("loading"));
        break;
      case "login":
        view = loginView(this.config, { devLogin: (id, pass) => void this.devLogin(id, pass), psc: (pass) => void this.psc(pass) }, screen.error);
        break;
      case "unlock":
        view = unlockView(screen.who, (pass) => void this.unlock(pass), () => void this.logout(), screen.error, this.relogin ? t("reloginUnlock") : null);
        break;
      case "relogin":
        view = reloginView(this.config, { name: client!.data.displayName, nationalId: client!.nationalId }, { devLogin: (id) => void this.devRelogin(id), psc: () => void this.pscRelogin(), back: () => this.showRooms() }, screen.error, screen.busy);
        break;
      case "recovery":
        view = recoveryView(screen.code, () => this.showRooms());
        break;
      case "rooms":
        view = roomsView(this.summaries(), {
          open: (room) => this.openRoom(room),
          logout: () => void this.logout(),
          newConversation: () => this.show({ name: "search", query: "", results: null, message: null }),
          newCareTeam: () => this.show({ name: "care-team", error: null }),
          devices: () => void this.showDevices(),
        }, this.statusBar());
        view.appendChild(h("button", { type: "button", id: "open-teleexpertise", onclick: () => this.show({ name: "teleexpertise", screen: new TeleexpertiseScreen(client!, this.api, () => this.showRooms(), () => this.screen.name === "teleexpertise" && this.render()) }) }, "Téléexpertise"));
        break;
      case "room":
        client!.markRead(screen.room);
        if (screen.screen.element.parentNode === this.root) {
          // The open conversation is updated in place (ui/conversation.ts).
          screen.screen.update();
          return;
        }
        view = screen.screen.element;
        break;
      case "search":
        view = searchView({ back: () => this.showRooms(), search: (q) => void this.search(q), start: (id) => void this.startWith(id) }, screen.query, screen.results, screen.message);
        break;
      case "care-team":
        view = careTeamView({ back: () => this.showRooms(), create: (title, members) => void this.createCareTeam(title, members) }, screen.error);
        break;
      case "devices":
        view = devicesView(client!, screen.devices, () => this.showRooms(), (device) => void this.revoke(device), () => this.show({ name: "link-approve", found: null, error: null }), sessionBanner(client!, this.sessionActions), screen.error);
        break;
      case "activity": {
        const p = screen.login.practitioner;
        view = activityView(`${p.first_name} ${p.last_name}`, screen.login.activities, (index) => void this.pickActivity(index), screen.error, screen.busy);
        break;
      }
      case "link-wait":
        view = linkWaitView(screen.shortCode, qrImage(screen.qrPayload, screen.shortCode), () => this.show({ name: "recover", error: null, busy: false }));
        this.linkScreen = screen;
        break;
      case "recover":
        view = recoverView({ back: () => this.linkScreen && this.show(this.linkScreen), recover: (code) => void this.recover(code) }, screen.error, screen.busy, screen.typed);
        break;
      case "link-approve":
        view = linkApproveView({ back: () => void this.showDevices(), check: (code) => void this.checkLink(code), approve: () => void this.approveLink() }, screen.found, screen.error);
        break;
      case "teleexpertise":
        view = screen.screen.view();
        break;
      case "safety":
        view = safetyView(client!.nameOf(screen.peer), screen.number, client!.isVerified(screen.peer), () => this.showRooms(), () => void client!.markVerified(screen.peer).then(() => this.render()));
        break;
    }
    replace(this.root, view);
  }

  private statusBar(): Node {
    const client = this.client!;
    return h("div", {}, h("p", { class: "status", id: "signed-in-as" }, t("signedInAs", { name: client.data.displayName })), connectionStatus(client), sessionBanner(client, this.sessionActions), alertsView(client, null));
  }

  private summaries(): RoomSummary[] {
    const client = this.client!;
    return [...client.rooms.values()]
      .filter((room) => !room.stored.left)
      .map((room) => {
        const messages = client.messages(room.id);
        const last = messages[messages.length - 1];
        return {
          id: room.id,
          name: client.roomTitle(room.id),
          unread: client.unread(room.id),
          unreadCapped: false,
          lastActivity: last ? new Date(last.ts).toISOString() : null,
        };
      })
      .sort((a, b) => (b.lastActivity ?? "").localeCompare(a.lastActivity ?? ""));
  }

  private describe(error: unknown): string {
    if (error instanceof ApiError) return errorText(error);
    if (error instanceof IdentityExistsError) return t("identityExists");
    if (error instanceof NetworkError) return t("networkError");
    if (error instanceof PscLoginError) return pscErrorText(error.code);
    if (error instanceof ReloginError) {
      const texts = { other_practitioner: "reloginOtherPractitioner", identity_changed: "reloginIdentityChanged", removed: "deviceRemoved" } as const;
      return t(texts[error.reason]);
    }
    if (error instanceof RecoveryError) {
      const texts = { bad_code: "recoverBadCode", no_backup: "recoverNoBackup", wrong_code: "recoverWrongCode", bad_backup: "recoverBadBackup", not_logged: "recoverNotLogged" } as const;
      return t(texts[error.reason]);
    }
    return `${t("errorTitle")}: ${error instanceof Error ? error.message : String(error)}`;
  }

  /** ``connect``: false while a login again is finished first (it connects). */
  private attach(client: RelaisClient, connect = true): void {
    this.client = client;
    let scheduled = false;
    client.onChange(() => {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        if (["rooms", "room", "devices"].includes(this.screen.name)) this.render();
      });
    });
    if (connect) {
      client.connect();
      void client.learnNames();
    }
    void unlockWorker(client.vault);
  }

  private async devLogin(nationalId: string, passphrase: string): Promise<void> {
    try {
      if (passphrase.length < 8) throw new Error(t("passphraseHint"));
      await this.register(await this.api.devLogin(nationalId, "Navigateur"), passphrase);
    } catch (error) {
      this.show({ name: "login", error: this.describe(error) });
    }
  }

  /** Pro Santé Connect: the passphrase waits in this tab's session storage for the
   * way back (it never leaves the browser). */
  private async psc(passphrase: string): Promise<void> {
    sessionStorage.setItem(PSC_PASSPHRASE, passphrase);
    await startPscLogin();
  }

  private async register(login: DevLogin, passphrase: string): Promise<void> {
    const p = login.practitioner;
    const info = { token: login.token, device: login.device, nationalId: p.national_id, displayName: `${p.first_name} ${p.last_name}` };
    try {
      const vault = await Vault.create(passphrase);
      try {
        const { client, code } = await RelaisClient.registerFirstDevice(this.api, vault, info);
        localStorage.setItem(WHO_KEY, info.displayName);
        this.attach(client);
        this.show({ name: "recovery", code: code.toString() });
      } catch (error) {
        if (!(error instanceof IdentityExistsError)) throw error;
        // Already on another device: this one is linked from it (§10.4.4).
        const pending = await RelaisClient.startLink(this.api, info);
        const joining = { vault, info, pending, busy: false };
        this.joining = joining;
        this.show({ name: "link-wait", shortCode: pending.code.shortCode, qrPayload: pending.code.qrPayload });
        const poll = async (): Promise<void> => {
          if (this.joining !== joining) return; // recovered with the code meanwhile
          if (joining.busy) {
            setTimeout(() => void poll(), 1000);
            return;
          }
          const client = await RelaisClient.finishLink(this.api, vault, info, pending);
          if (!client) {
            setTimeout(() => void poll().catch((e: unknown) => this.show({ name: "login", error: this.describe(e) })), 1000);
            return;
          }
          this.joining = null;
          localStorage.setItem(WHO_KEY, info.displayName);
          this.attach(client);
          this.showRooms();
        };
        await poll();
      }
    } catch (error) {
      this.show({ name: "login", error: this.describe(error) });
    }
  }

  private linkScreen: Screen | null = null;

  /** Recovery with the code on this new browser (docs/protocol.md §10.9). */
  private async recover(code: string): Promise<void> {
    const joining = this.joining;
    if (!joining || joining.busy) return;
    joining.busy = true;
    this.show({ name: "recover", error: null, busy: true, typed: code });
    try {
      const client = await RelaisClient.recover(this.api, joining.vault, joining.info, joining.pending, code);
      this.joining = null;
      localStorage.setItem(WHO_KEY, joining.info.displayName);
      this.attach(client);
      this.showRooms();
    } catch (error) {
      joining.busy = false;
      this.show({ name: "recover", error: this.describe(error), busy: false, typed: code });
    }
  }

  private async checkLink(code: string): Promise<void> {
    try {
      this.show({ name: "link-approve", found: await this.client!.linkRequestFor(code), error: null });
    } catch (error) {
      this.show({ name: "link-approve", found: null, error: this.describe(error) });
    }
  }

  private async approveLink(): Promise<void> {
    const screen = this.screen;
    if (screen.name !== "link-approve" || !screen.found) return;
    try {
      await this.client!.approveLink(screen.found);
      await this.showDevices();
    } catch (error) {
      this.show({ name: "link-approve", found: null, error: this.describe(error) });
    }
  }

  private async unlock(passphrase: string): Promise<void> {
    const who = localStorage.getItem(WHO_KEY) ?? "";
    try {
      const { vault, data } = await Vault.open<VaultData>(passphrase);
      const client = await RelaisClient.open(this.api, vault, data);
      const relogin = this.relogin;
      this.relogin = null;
      this.attach(client, relogin === null);
      if (relogin) return await this.finishRelogin(relogin);
      this.showRooms();
    } catch (error) {
      this.show({ name: "unlock", who, error: error instanceof WrongPassphrase ? t("wrongPassphrase") : this.describe(error) });
    }
  }

  /** Log in again after the session ended (client/session.ts): the development login,
   * for the practitioner this browser holds. */
  private async devRelogin(nationalId: string): Promise<void> {
    this.show({ name: "relogin", error: null, busy: true });
    try {
      await this.finishRelogin(await this.api.devLogin(nationalId, "Navigateur"));
    } catch (error) {
      this.show({ name: "relogin", error: this.describe(error), busy: false });
    }
  }

  /** Pro Santé Connect leaves the page: the vault is unlocked again on the way back. */
  private async pscRelogin(): Promise<void> {
    sessionStorage.setItem(PSC_RELOGIN, "1");
    await startPscLogin();
  }

  private async finishRelogin(login: DevLogin): Promise<void> {
    const client = this.client!;
    this.show({ name: "relogin", error: null, busy: true });
    try {
      await client.continueAsNewDevice({ token: login.token, device: login.device, nationalId: login.practitioner.national_id });
      void registerPushAgain(this.api).catch(() => undefined);
      void client.learnNames();
      this.showRooms();
    } catch (error) {
      if (client.session === "removed") return this.showRooms(); // its banner says why
      if (client.session === "active") client.session = "ended";
      this.show({ name: "relogin", error: this.describe(error), busy: false });
    }
  }

  private showRooms(): void {
    this.show({ name: "rooms" });
  }

  private openRoom(room: number): void {
    history.pushState({ room }, "");
    const client = this.client!;
    const screen = new ConversationScreen(client, room, {
      back: () => this.showRooms(),
      send: (text) => void client.sendText(room, text),
      typing: (active) => {
        if (active !== this.typingSent) client.setTyping(room, active);
        this.typingSent = active;
      },
      safety: (peer) => void this.showSafety(peer),
      session: this.sessionActions,
    });
    this.show({ name: "room", room, screen });
  }

  private async search(query: string): Promise<void> {
    try {
      const results = await searchDirectory(this.api, query);
      this.show({ name: "search", query, results: results.filter((p) => p.national_id !== this.client?.nationalId), message: null });
    } catch (error) {
      this.show({ name: "search", query, results: null, message: this.describe(error) });
    }
  }

  /** The one direct room of two people: opened if it exists; created by this device
   * when its practitioner's national id sorts first (docs/protocol.md §10.11), else
   * waited for. */
  private async startWith(nationalId: string): Promise<void> {
    const client = this.client!;
    await client.learnName(nationalId);
    const existing = client.directRoomWith(nationalId);
    const screen = this.screen.name === "search" ? this.screen : { name: "search" as const, query: "", results: null };
    try {
      if (existing !== null) return this.openRoom(existing);
      if (client.nationalId < nationalId) return this.openRoom(await client.createRoom("direct", [nationalId]));
      await client.refreshRooms();
      const found = client.directRoomWith(nationalId);
      if (found !== null) return this.openRoom(found);
      this.show({ ...screen, message: t("waitingForPeer", { name: client.nameOf(nationalId) }) });
    } catch (error) {
      this.show({ ...screen, message: this.describe(error) });
    }
  }

  private async createCareTeam(title: string, members: string[]): Promise<void> {
    const client = this.client!;
    try {
      const room = await client.createRoom("care_team", members, title);
      await client.learnNames();
      this.openRoom(room);
    } catch (error) {
      this.show({ name: "care-team", error: this.describe(error) });
    }
  }

  /** After the session ended the server lists no device: the screen says so (its
   * banner offers to log in again) instead of failing. */
  private async showDevices(): Promise<void> {
    const client = this.client!;
    if (client.session !== "active") return this.show({ name: "devices", devices: null, error: null });
    try {
      await client.checkMyDevices();
      this.show({ name: "devices", devices: await client.devices(), error: null });
    } catch (error) {
      // A refused token: the client finds out why, and the banner says it.
      this.show({ name: "devices", devices: null, error: client.session === "active" ? this.describe(error) : null });
    }
  }

  private async revoke(device: number): Promise<void> {
    const client = this.client!;
    try {
      await client.revokeDevice(device);
    } catch (error) {
      const screen = this.screen.name === "devices" ? this.screen : { name: "devices" as const, devices: null };
      return this.show({ ...screen, error: client.session === "active" ? this.describe(error) : null });
    }
    await this.showDevices();
  }

  /** A PSC login for a practitioner with several places of practice: this device acts
   * in the one chosen (``auth/psc/activity``) before the login goes on. */
  private chooseActivity(login: PscLogin): Promise<void> {
    if (login.activity !== null || login.activities.length < 2) return Promise.resolve();
    return new Promise((resolve) => {
      this.activityChosen = resolve;
      this.show({ name: "activity", login, error: null, busy: false });
    });
  }

  private async pickActivity(index: number): Promise<void> {
    const screen = this.screen;
    if (screen.name !== "activity" || screen.busy) return;
    this.show({ ...screen, busy: true, error: null });
    try {
      await chooseActivity(screen.login.token, index);
    } catch (error) {
      return this.show({ ...screen, busy: false, error: this.describe(error) });
    }
    const chosen = this.activityChosen;
    this.activityChosen = null;
    this.show({ name: "loading" });
    chosen?.();
  }

  private async showSafety(peer: string): Promise<void> {
    const client = this.client!;
    this.show({ name: "safety", peer, number: await client.safetyNumberWith(peer) });
  }

  private async logout(): Promise<void> {
    const client = this.client;
    await client?.close();
    if (client) await this.api.logout().catch(() => undefined);
    this.api.setToken(null);
    this.client = null;
    forgetNotifications();
    await lockWorker();
    localStorage.removeItem(WHO_KEY);
    await db.wipe();
    this.show({ name: "login", error: null });
  }
}

/** The app's own words for a PSC login that gave no token (never the URL's text). */
function pscErrorText(code: PscErrorCode): string {
  switch (code) {
    case "psc_provider_error":
      return t("pscCancelled");
    case "state_mismatch":
    case "psc_state_mismatch":
      return t("pscStateMismatch");
    case "psc_login_expired":
      return t("pscLoginExpired");
    case "psc_identity_refused":
    case "not_in_directory":
      return t("pscIdentityRefused");
    default:
      return t("pscFailed", { code });
  }
}
