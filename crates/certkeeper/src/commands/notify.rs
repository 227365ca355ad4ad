//! `certkeeper notify test [TARGET]`: send a test notice to one target or all of them now,
//! without the outbox, and say for each whether it took it. What the daemon queues goes
//! through the same senders, so a target that passes here receives real notices too.

use std::sync::Arc;

use certkeeper_core::{Clock as _, Inventory};
use certkeeper_notify::{Dispatcher, Notice, Outbox, host_name};
use certkeeper_store::Store;

use crate::engine::ports::SystemClock;
use crate::exit::Exit;
use crate::report::error_chain;

pub async fn test(inventory: &Inventory, target: Option<&str>) -> anyhow::Result<Exit> {
    let store = Store::open(&inventory.state_dir)?;
    let outbox = Outbox::open(store.outbox_dir()?)?;
    let host = host_name();
    let dispatcher = Dispatcher::new(&inventory.notify, outbox, &host, Arc::new(SystemClock))?;
    let names = match target {
        Some(name) => vec![name.to_owned()],
        None => dispatcher.names(),
    };
    if names.is_empty() {
        eprintln!("error: no [[notify]] target is configured");
        return Ok(Exit::Failure);
    }
    let notice = Notice::test(&host, SystemClock.now());
    let mut ok = true;
    for name in names {
        match dispatcher.send_now(&name, &notice).await {
            Ok(()) => println!("{name}: delivered"),
            Err(err) => {
                ok = false;
                println!("{name}: failed: {}", error_chain(&err));
            }
        }
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}
