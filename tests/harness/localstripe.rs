//! `localstripe` (PyPI), a stateful Stripe emulator, started by the tests themselves: one
//! per test, on a free loopback port, with its state in a temporary file so it can be
//! stopped and started again where it was (`tests/localstripe/run.py`). `.ci/run`
//! installs it; where it cannot be installed the Stripe tests say so loudly and skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running (or stopped) emulator.
pub struct LocalStripe {
    pub port: u16,
    state: PathBuf,
    child: Option<Child>,
    client: reqwest::Client,
}

/// The secret key the tests use (localstripe accepts any `sk_…`).
pub const SECRET_KEY: &str = "sk_test_tenure_e2e_0000";
pub const PUBLISHABLE_KEY: &str = "pk_test_tenure_e2e_0000";
pub const WEBHOOK_SECRET: &str = "whsec_tenure_e2e_0000";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("localstripe/run.py")
}

/// Whether `python3 -c 'import localstripe'` works.
pub fn installed() -> bool {
    Command::new("python3")
        .args(["-c", "import localstripe"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl LocalStripe {
    /// Starts an emulator, or `None` (with a loud message) when localstripe is not
    /// installed.
    pub async fn start() -> Option<Self> {
        if !installed() {
            eprintln!(
                "\n!!!!!!!! SKIPPED: localstripe is not installed (python3 -m pip install \
                 localstripe); the Stripe connector is NOT tested !!!!!!!!\n"
            );
            return None;
        }
        // reqwest (without a default TLS provider here) needs one even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let state = std::env::temp_dir().join(format!(
            "tenure-localstripe-{}-{port}.pickle",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&state);
        let mut emulator = Self {
            port,
            state,
            child: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        };
        emulator.resume().await;
        Some(emulator)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process again (with the state it had) and waits until it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("python3")
            .arg(script())
            .arg(self.port.to_string())
            .arg(&self.state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn localstripe");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.get("/v1/customers?limit=1").await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "localstripe did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (SIGKILL: whatever it was doing stops there).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET path` with the secret key: the JSON answer, or the status of a refusal.
    pub async fn get(&self, path: &str) -> Result<Value, String> {
        let res = self
            .client
            .get(format!("{}{path}", self.base()))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status();
        let body: Value = serde_json::from_slice(&res.bytes().await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    /// `POST path` with a form, authenticated with `key` (the secret key, or the
    /// publishable key as Stripe.js sends it in the body).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, String> {
        self.send_form(path, form, true).await
    }

    /// What Stripe.js does when the customer completes 3-D Secure for a PaymentIntent
    /// (localstripe's stand-in for the bank's page): the PaymentIntent after it.
    pub async fn authenticate_payment(&self, client_secret: &str) -> Value {
        let id = client_secret.split("_secret_").next().expect("pi id");
        self.send_form(
            &format!("/v1/payment_intents/{id}/_authenticate"),
            &[
                ("key", PUBLISHABLE_KEY),
                ("client_secret", client_secret),
                ("success", "true"),
            ],
            false,
        )
        .await
        .expect("authenticate")
    }

    async fn send_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        secret: bool,
    ) -> Result<Value, String> {
        let mut req = self.client.post(format!("{}{path}", self.base()));
        if secret {
            req = req.bearer_auth(SECRET_KEY);
        }
        let res = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).expect("form"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status();
        let body: Value = serde_json::from_slice(&res.bytes().await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    /// What Stripe.js does with a setup intent's client secret and a card the customer
    /// typed: confirms it with the card's details (sent to the emulator only, never to
    /// Tenure); the payment method it made (`pm_…`).
    pub async fn confirm_setup_intent(
        &self,
        intent: &str,
        client_secret: &str,
        number: &str,
    ) -> String {
        // Stripe.js holds only the publishable key, sent in the body.
        let confirmed = self
            .send_form(
                &format!("/v1/setup_intents/{intent}/confirm"),
                &[
                    ("key", PUBLISHABLE_KEY),
                    ("client_secret", client_secret),
                    ("payment_method_data[type]", "card"),
                    ("payment_method_data[card][number]", number),
                    ("payment_method_data[card][exp_month]", "12"),
                    ("payment_method_data[card][exp_year]", "2034"),
                    ("payment_method_data[card][cvc]", "123"),
                ],
                false,
            )
            .await
            .expect("confirm setup intent");
        confirmed["payment_method"]
            .as_str()
            .expect("payment method")
            .to_owned()
    }

    /// Every PaymentIntent the emulator holds.
    pub async fn payment_intents(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/v1/payment_intents?limit=100&starting_after={a}"),
                None => "/v1/payment_intents?limit=100".to_owned(),
            };
            let page = self.get(&path).await.expect("list payment intents");
            let data = page["data"].as_array().cloned().unwrap_or_default();
            all.extend(data.iter().cloned());
            match (page["has_more"].as_bool(), data.last()) {
                (Some(true), Some(last)) => after = last["id"].as_str().map(str::to_owned),
                _ => return all,
            }
        }
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.state);
    }
}
