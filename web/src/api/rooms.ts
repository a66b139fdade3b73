// Rooms as the REST API lists them (docs/api.md, "Rooms and their state").
import type { Api } from "./http";

export interface RoomMember {
  practitioner: string;
  role: string;
}

export interface RoomInfo {
  id: number;
  uid: string;
  kind: string;
  role: string | null;
  last_seq: number;
  state_epoch: number;
  members: RoomMember[];
  archiver: string | null;
}

export interface UnreadInfo {
  room: number;
  last_seq: number;
  read_seq: number;
  unread: number;
  unread_capped?: boolean;
}

export async function listRooms(api: Api): Promise<RoomInfo[]> {
  return (await api.get<{ rooms: RoomInfo[] }>("rooms")).rooms;
}

export async function unreadCounts(api: Api): Promise<Map<number, UnreadInfo>> {
  const answer = await api.get<{ rooms: UnreadInfo[] }>("rooms/unread");
  return new Map(answer.rooms.map((info) => [info.room, info]));
}
