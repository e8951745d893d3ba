//! The browser: a chromedriver the scraper starts and supervises itself,
//! driving headless Chromium through thirtyfour. When either dies, the next
//! call starts them again with a fresh profile.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use thirtyfour::common::capabilities::chromium::ChromiumLikeCapabilities;
use thirtyfour::{DesiredCapabilities, WebDriver};
use tokio::process::{Child, Command};

/// The flags headless Chromium needs to start quickly and stay quiet on a
/// closed network (without them it waits on update and sync services).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// Marks the profile directories the scraper creates, so stale ones can be
/// found (and tests can find the browser's processes).
pub const PROFILE_PREFIX: &str = "shelfwatch-chromium-";

/// `[scrape.browser]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserSettings {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    /// Extra Chromium flags, after [`CHROMIUM_FLAGS`].
    pub extra_flags: Vec<String>,
    /// Seconds to wait for chromedriver to answer after it starts.
    pub start_timeout_secs: u64,
    /// The User-Agent header. It names shelfwatch, so shops can tell the
    /// scraper apart and address it in robots.txt.
    pub user_agent: String,
    /// A WebDriver server to use instead of starting chromedriver here
    /// (a Selenium container, e.g. `http://chromium:4444`). Chromium is then
    /// the server's; `chromium` and `chromedriver` are not used.
    pub webdriver_url: Option<String>,
}

/// Checks a `webdriver_url`: http(s), with a host.
pub fn check_webdriver_url(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("{url:?}: a WebDriver URL is http:// or https://");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("{url:?} has no host");
    }
    Ok(())
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            chromium: PathBuf::from("/usr/bin/chromium"),
            chromedriver: PathBuf::from("/usr/bin/chromedriver"),
            extra_flags: Vec::new(),
            start_timeout_secs: 30,
            user_agent: format!(
                "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome shelfwatch/{} (grocery price comparison)",
                env!("CARGO_PKG_VERSION")
            ),
            webdriver_url: None,
        }
    }
}

/// A supervised chromedriver + Chromium pair and its WebDriver session.
pub struct Browser {
    settings: BrowserSettings,
    driver: Option<Child>,
    /// chromedriver's process group (its pid when started), which the
    /// Chromium it starts belongs to. Kept apart from `driver`: once
    /// chromedriver has died and been reaped its pid is gone from the
    /// `Child`, but its Chromium lives on in the group.
    group: Option<i32>,
    session: Option<WebDriver>,
    profile: Option<PathBuf>,
    /// How many times the pair was (re)started.
    pub starts: u32,
}

impl Browser {
    pub fn new(settings: BrowserSettings) -> anyhow::Result<Self> {
        if let Some(url) = &settings.webdriver_url {
            check_webdriver_url(url).context("scrape.browser.webdriver_url")?;
            return Ok(Self {
                settings,
                driver: None,
                group: None,
                session: None,
                profile: None,
                starts: 0,
            });
        }
        for (what, path, package) in [
            ("chromium", &settings.chromium, "chromium"),
            ("chromedriver", &settings.chromedriver, "chromium-driver"),
        ] {
            if !path.exists() {
                bail!(
                    "{what} not found at {} (install it with `apt-get install {package}`, or set \
                     scrape.browser.{what})",
                    path.display()
                );
            }
        }
        Ok(Self {
            settings,
            driver: None,
            group: None,
            session: None,
            profile: None,
            starts: 0,
        })
    }

    /// The live session, starting chromedriver and Chromium first when
    /// needed.
    pub async fn session(&mut self) -> anyhow::Result<WebDriver> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        self.start().await?;
        self.session
            .clone()
            .context("the browser session did not start")
    }

    /// Whether the session still answers (a quick WebDriver round trip).
    pub async fn alive(&mut self) -> bool {
        let Some(s) = &self.session else {
            return false;
        };
        if let Some(child) = &mut self.driver
            && !matches!(child.try_wait(), Ok(None))
        {
            return false;
        }
        tokio::time::timeout(Duration::from_secs(5), s.title())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Drops the current pair and starts a new one on the next call.
    pub async fn reset(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.quit()).await;
        }
        self.kill_driver().await;
    }

    /// Opens a session on the configured remote WebDriver server; the
    /// server owns Chromium and its profile.
    async fn start_remote(&mut self, url: String) -> anyhow::Result<()> {
        let mut caps = DesiredCapabilities::chrome();
        for flag in CHROMIUM_FLAGS {
            caps.add_arg(flag)?;
        }
        caps.add_arg(&format!("--user-agent={}", self.settings.user_agent))?;
        for flag in &self.settings.extra_flags {
            caps.add_arg(flag)?;
        }
        let session = tokio::time::timeout(
            Duration::from_secs(self.settings.start_timeout_secs),
            WebDriver::builder(url.as_str(), caps).request_timeout(Duration::from_secs(60)),
        )
        .await
        .with_context(|| format!("starting a session on {url} timed out"))?
        .with_context(|| format!("starting a session on {url}"))?;
        self.session = Some(session);
        self.starts += 1;
        tracing::debug!(url, starts = self.starts, "remote browser session started");
        Ok(())
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        self.kill_driver().await;
        if let Some(url) = self.settings.webdriver_url.clone() {
            return self.start_remote(url).await;
        }
        let port = shelfwatch_store::db::embedded::free_port()?;
        let mut cmd = Command::new(&self.settings.chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, so Chromium goes down with it.
            .process_group(0);
        let child = cmd.spawn().with_context(|| {
            format!(
                "starting chromedriver ({})",
                self.settings.chromedriver.display()
            )
        })?;
        self.group = child.id().and_then(|pid| i32::try_from(pid).ok());
        self.driver = Some(child);
        let url = format!("http://127.0.0.1:{port}");
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.settings.start_timeout_secs);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Some(child) = &mut self.driver
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("chromedriver exited at start ({status})");
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "chromedriver did not listen on port {port} within {} s",
                    self.settings.start_timeout_secs
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let profile = std::env::temp_dir().join(format!(
            "{PROFILE_PREFIX}{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&profile)
            .with_context(|| format!("creating the browser profile {}", profile.display()))?;
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&self.settings.chromium.to_string_lossy())?;
        for flag in CHROMIUM_FLAGS {
            caps.add_arg(flag)?;
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.display()))?;
        caps.add_arg(&format!("--user-agent={}", self.settings.user_agent))?;
        for flag in &self.settings.extra_flags {
            caps.add_arg(flag)?;
        }
        let session = tokio::time::timeout(
            Duration::from_secs(self.settings.start_timeout_secs),
            WebDriver::builder(url, caps).request_timeout(Duration::from_secs(60)),
        )
        .await
        .context("starting a Chromium session timed out")?
        .context("starting a Chromium session")?;
        self.remove_profile();
        self.profile = Some(profile);
        self.session = Some(session);
        self.starts += 1;
        tracing::debug!(port, starts = self.starts, "browser session started");
        Ok(())
    }

    async fn kill_driver(&mut self) {
        // The whole group: chromedriver and the Chromium it started, even
        // when chromedriver itself is already gone.
        self.kill_group();
        if let Some(mut child) = self.driver.take() {
            let _ = child.kill().await;
        }
        self.session = None;
        self.remove_profile();
    }

    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn remove_profile(&mut self) {
        if let Some(dir) = self.profile.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Ends the session and stops chromedriver and Chromium.
    /// (Dropping a `Browser` stops them too, without the polite quit.)
    pub async fn shutdown(mut self) {
        self.reset().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
        self.remove_profile();
    }
}
