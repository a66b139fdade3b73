// The browser's own storage of the app: one IndexedDB database, one key-value store.
// What goes in it (the session, the wrapped keys, decrypted history) is described in
// docs/web.md, "Where keys live"; logout deletes the whole database.
const DB_NAME = "relais";
const STORE = "kv";

let opened: Promise<IDBDatabase> | null = null;

function database(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("indexedDB.open failed"));
  });
  return opened;
}

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

export async function get<T>(key: string): Promise<T | undefined> {
  const db = await database();
  return (await done(db.transaction(STORE).objectStore(STORE).get(key))) as T | undefined;
}

export async function put(key: string, value: unknown): Promise<void> {
  const db = await database();
  await done(db.transaction(STORE, "readwrite").objectStore(STORE).put(value, key));
}

/** Several records read in one transaction (undefined where a key holds nothing). */
export async function getMany<T>(keys: string[]): Promise<(T | undefined)[]> {
  if (!keys.length) return [];
  const store = (await database()).transaction(STORE).objectStore(STORE);
  return Promise.all(keys.map((key) => done(store.get(key)) as Promise<T | undefined>));
}

/** Records written and deleted in one transaction: all of them, or none. */
export async function write(puts: [string, unknown][], deletes: string[] = []): Promise<void> {
  const transaction = (await database()).transaction(STORE, "readwrite");
  const store = transaction.objectStore(STORE);
  for (const [key, value] of puts) store.put(value, key);
  for (const key of deletes) store.delete(key);
  await new Promise<void>((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onabort = transaction.onerror = () => reject(transaction.error ?? new Error("IndexedDB transaction failed"));
  });
}

export async function remove(key: string): Promise<void> {
  const db = await database();
  await done(db.transaction(STORE, "readwrite").objectStore(STORE).delete(key));
}

/** Everything the app keeps in this browser, gone (logout). */
export async function wipe(): Promise<void> {
  if (opened) (await opened).close();
  opened = null;
  await new Promise<void>((resolve, reject) => {
    const request = indexedDB.deleteDatabase(DB_NAME);
    request.onsuccess = () => resolve();
    request.onblocked = () => resolve();
    request.onerror = () => reject(request.error ?? new Error("deleteDatabase failed"));
  });
}
