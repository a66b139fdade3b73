// The app: which screen shows, and the actions that move between screens. Views only
// render what they are given; the protocol lives in e2ee/ and the transport in api/.
import { Api } from "../api/http";
import { ApiError } from "../api/errors";
import { listRooms, unreadCounts } from "../api/rooms";
import type { ServerConfig } from "../config";
import { errorText, t } from "../i18n";
import { loadSession, saveSession, type Session } from "../session";
import * as db from "../store/db";
import { whenLanguageChanges } from "./chrome";
import { h, replace } from "./dom";
import { loginView } from "./login";
import { roomsView, type RoomSummary } from "./rooms";

type Screen = { name: "loading" } | { name: "login"; error: string | null } | { name: "rooms"; rooms: RoomSummary[] };

export class App {
  private readonly api = new Api();
  private session: Session | null = null;
  private screen: Screen = { name: "loading" };

  constructor(
    private readonly root: HTMLElement,
    private readonly config: ServerConfig,
  ) {
    whenLanguageChanges(() => this.render());
  }

  async start(): Promise<void> {
    this.render();
    const session = await loadSession();
    if (session) {
      this.session = session;
      this.api.setToken(session.token);
      await this.showRooms();
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
    switch (screen.name) {
      case "loading":
        replace(this.root, h("p", {}, t("loading")));
        return;
      case "login":
        replace(
          this.root,
          loginView(
            this.config,
            {
              devLogin: (nationalId, passphrase) => void this.devLogin(nationalId, passphrase),
              psc: () => undefined,
            },
            screen.error,
          ),
        );
        return;
      case "rooms":
        replace(
          this.root,
          roomsView(
            screen.rooms,
            {
              open: () => undefined,
              logout: () => void this.logout(),
              newConversation: () => undefined,
              newCareTeam: () => undefined,
              devices: () => undefined,
            },
            null,
          ),
        );
        return;
    }
  }

  private describe(error: unknown): string {
    return error instanceof ApiError
      ? errorText(error)
      : `${t("errorTitle")}: ${error instanceof Error ? error.message : String(error)}`;
  }

  private async devLogin(nationalId: string, _passphrase: string): Promise<void> {
    try {
      const login = await this.api.devLogin(nationalId, "Navigateur");
      const practitioner = login.practitioner;
      this.session = {
        token: login.token,
        device: login.device,
        nationalId: practitioner.national_id,
        displayName: `${practitioner.first_name} ${practitioner.last_name}`,
      };
      this.api.setToken(login.token);
      await saveSession(this.session);
      await this.showRooms();
    } catch (error) {
      this.show({ name: "login", error: this.describe(error) });
    }
  }

  private async showRooms(): Promise<void> {
    const [rooms, unread] = await Promise.all([listRooms(this.api), unreadCounts(this.api)]);
    this.show({
      name: "rooms",
      rooms: rooms.map((room) => ({
        id: room.id,
        name: `#${room.id}`,
        unread: unread.get(room.id)?.unread ?? 0,
        unreadCapped: unread.get(room.id)?.unread_capped ?? false,
        lastActivity: null,
      })),
    });
  }

  private async logout(): Promise<void> {
    await this.api.logout().catch(() => undefined);
    this.api.setToken(null);
    this.session = null;
    await db.wipe();
    this.show({ name: "login", error: null });
  }
}
