// What the server's page says about itself (webapp/views.py: app_config).
export interface ServerConfig {
  devLogin: boolean;
  psc: boolean;
}

export function readConfig(): ServerConfig {
  const element = document.getElementById("relais-config");
  const parsed = element?.textContent ? (JSON.parse(element.textContent) as Partial<ServerConfig>) : {};
  return { devLogin: parsed.devLogin === true, psc: parsed.psc === true };
}
