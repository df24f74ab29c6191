//! Amazon Connect: `deploy` associates the contact-flow function with the configured instance
//! (the local cloud's gateway plays Connect, which moto lacks), the smoke test checks the
//! association and invokes the function as the instance, a changed or removed setting moves or
//! removes the association, and `teardown` removes it. An instance that does not exist, or is
//! in another region, fails the deploy before anything is made, naming the instance. With
//! `connect.sample_flow`, the sample contact flow is published in the instance, checked by the
//! smoke test, healed by a deploy and deleted by teardown.

use anyhow::Context;

use super::{CONNECT_INSTANCE, Local, SECOND_CONNECT_INSTANCE, step};

/// The ARNs associated with the local cloud's instance, as Connect lists them.
async fn associated(local: &Local) -> anyhow::Result<Vec<String>> {
    let connect = aws_sdk_connect::Client::new(&local.sdk().await?);
    let id = CONNECT_INSTANCE
        .rsplit('/')
        .next()
        .context("an instance id")?;
    Ok(connect
        .list_lambda_functions()
        .instance_id(id)
        .send()
        .await?
        .lambda_functions()
        .to_vec())
}

pub(crate) async fn deploy_associates_the_contact_flow_function_with_the_instance_and_teardown_removes_it()
-> anyhow::Result<()> {
    let mut local = Local::new("connect");
    let env = "e2e-connect";
    let function =
        "arn:aws:lambda:us-east-1:123456789012:function:sfstack-e2e-connect-sf-invoke-api";
    let with_instance = [("SFSTACK_CONNECT_INSTANCE_ARN", CONNECT_INSTANCE)];

    // An instance that does not exist, and one in another region: refused before anything is
    // made, naming the instance and what to check.
    let missing =
        "arn:aws:connect:us-east-1:123456789012:instance/0c2a4b6e-e2e0-4c0a-9d3f-5a1b2c3d4e5f";
    let refused = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_CONNECT_INSTANCE_ARN", missing)],
    )?;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains(missing)
            && refused.stderr.contains("ResourceNotFoundException")
            && refused.stderr.contains("hint: check connect.instance_arn"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("stack:"),
        "nothing was deployed:\n{}",
        refused.stderr
    );
    let elsewhere = CONNECT_INSTANCE.replace("us-east-1", "eu-west-2");
    let refused = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_CONNECT_INSTANCE_ARN", &elsewhere)],
    )?;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(&elsewhere) && refused.stderr.contains("eu-west-2"),
        "{}",
        refused.stderr
    );

    // Associated by the deploy, checked and used by the smoke test; a second deploy changes
    // nothing.
    let deployed = local
        .run(
            &["deploy", "--env", env, "--output", "json"],
            &with_instance,
        )?
        .ok()?
        .json()?;
    assert!(
        deployed["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|change| change
                .as_str()
                .is_some_and(|c| c.contains("associated with"))),
        "{deployed}"
    );
    assert_eq!(associated(&local).await?, vec![function.to_string()]);
    let report = local
        .run(
            &["smoke-test", "--env", env, "--output", "json"],
            &with_instance,
        )?
        .ok()?
        .json()?;
    assert_eq!(step(&report, "association").0, "passed", "{report}");
    assert_eq!(step(&report, "phoneLookup").0, "passed", "{report}");
    let again = local
        .run(
            &["deploy", "--env", env, "--output", "json"],
            &with_instance,
        )?
        .ok()?
        .json()?;
    assert_eq!(again["changes"], serde_json::json!([]), "{again}");

    // An association made outside the tool is gone: the smoke test says so, and the instance
    // can no longer invoke the function (as on Connect); the next deploy heals it.
    let connect = aws_sdk_connect::Client::new(&local.sdk().await?);
    let id = CONNECT_INSTANCE.rsplit('/').next().context("id")?;
    connect
        .disassociate_lambda_function()
        .instance_id(id)
        .function_arn(function)
        .send()
        .await?;
    let broken = local.run(
        &["smoke-test", "--env", env, "--output", "json"],
        &with_instance,
    )?;
    let report = broken.json()?;
    assert_eq!(broken.code, 3, "{report}");
    let (result, detail) = step(&report, "association");
    assert_eq!(result, "failed", "{report}");
    assert!(
        detail.contains("is not associated with the Amazon Connect instance"),
        "{detail}"
    );
    let (result, detail) = step(&report, "phoneLookup");
    assert_eq!(result, "failed", "{report}");
    assert!(detail.contains("not associated"), "{detail}");
    local.run(&["deploy", "--env", env], &with_instance)?.ok()?;
    assert_eq!(associated(&local).await?, vec![function.to_string()]);

    // The setting removed: the association goes with the permission.
    let unset = local
        .run(&["deploy", "--env", env, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert!(
        unset["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|change| change
                .as_str()
                .is_some_and(|c| c.contains("no longer associated"))),
        "{unset}"
    );
    assert!(associated(&local).await?.is_empty());

    // The sample flow: refused without an instance; published with one, invoking the
    // deployed function.
    let sample = [
        ("SFSTACK_CONNECT_INSTANCE_ARN", CONNECT_INSTANCE),
        ("SFSTACK_CONNECT_SAMPLE_FLOW", "true"),
    ];
    let refused = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_CONNECT_SAMPLE_FLOW", "true")],
    )?;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("connect.sample_flow is true but no Amazon Connect instance"),
        "{}",
        refused.stderr
    );
    let flow = "sfstack-e2e-connect-sample-flow";
    let deployed = local
        .run(&["deploy", "--env", env, "--output", "json"], &sample)?
        .ok()?
        .json()?;
    assert!(
        deployed["changes"]
            .to_string()
            .contains(&format!("contact flow {flow} created")),
        "{deployed}"
    );
    let report = local
        .run(&["smoke-test", "--env", env, "--output", "json"], &sample)?
        .ok()?
        .json()?;
    assert_eq!(step(&report, "sampleFlow").0, "passed", "{report}");
    let again = local
        .run(&["deploy", "--env", env, "--output", "json"], &sample)?
        .ok()?
        .json()?;
    assert_eq!(again["changes"], serde_json::json!([]), "{again}");

    // Edited in the console so that it no longer calls the function: the smoke test says so,
    // and a deploy puts it back.
    let flow_id = connect
        .list_contact_flows()
        .instance_id(id)
        .send()
        .await?
        .contact_flow_summary_list()
        .iter()
        .find(|summary| summary.name() == Some(flow))
        .and_then(|summary| summary.id())
        .context("the sample flow")?
        .to_string();
    connect
        .update_contact_flow_content()
        .instance_id(id)
        .contact_flow_id(&flow_id)
        .content(
            serde_json::json!({"Version": "2019-10-30", "StartAction": "bye", "Actions": [
                {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
            ]})
            .to_string(),
        )
        .send()
        .await?;
    let broken = local.run(&["smoke-test", "--env", env, "--output", "json"], &sample)?;
    let report = broken.json()?;
    let (result, detail) = step(&report, "sampleFlow");
    assert_eq!((broken.code, result), (3, "failed"), "{report}");
    assert!(detail.contains("not the deployed"), "{detail}");
    let healed = local
        .run(&["deploy", "--env", env, "--output", "json"], &sample)?
        .ok()?
        .json()?;
    assert!(
        healed["changes"]
            .to_string()
            .contains(&format!("contact flow {flow} updated")),
        "{healed}"
    );
    let content = connect
        .describe_contact_flow()
        .instance_id(id)
        .contact_flow_id(&flow_id)
        .send()
        .await?
        .contact_flow()
        .and_then(|described| described.content())
        .unwrap_or_default()
        .to_string();
    assert!(content.contains(function), "healed: {content}");

    // Moved to another instance: the flow and the association leave the first one and are made
    // in the second.
    let second = [
        ("SFSTACK_CONNECT_INSTANCE_ARN", SECOND_CONNECT_INSTANCE),
        ("SFSTACK_CONNECT_SAMPLE_FLOW", "true"),
    ];
    let moved = local
        .run(&["deploy", "--env", env, "--output", "json"], &second)?
        .ok()?
        .json()?;
    let changes = moved["changes"].to_string();
    for expected in [
        format!("contact flow {flow} deleted from {CONNECT_INSTANCE}"),
        format!("no longer associated with {CONNECT_INSTANCE}"),
        format!("associated with {SECOND_CONNECT_INSTANCE}"),
        format!("contact flow {flow} created"),
    ] {
        assert!(changes.contains(&expected), "{expected}: {moved}");
    }
    assert!(associated(&local).await?.is_empty());
    let first_flows = connect.list_contact_flows().instance_id(id).send().await?;
    assert!(
        first_flows.contact_flow_summary_list().is_empty(),
        "{first_flows:?}"
    );
    let report = local
        .run(&["smoke-test", "--env", env, "--output", "json"], &second)?
        .ok()?
        .json()?;
    assert_eq!(step(&report, "sampleFlow").0, "passed", "{report}");

    // Turned off: the flow goes, the association stays.
    let only_second = [("SFSTACK_CONNECT_INSTANCE_ARN", SECOND_CONNECT_INSTANCE)];
    let off = local
        .run(&["deploy", "--env", env, "--output", "json"], &only_second)?
        .ok()?
        .json()?;
    assert!(
        off["changes"]
            .to_string()
            .contains(&format!("contact flow {flow} deleted\"")),
        "{off}"
    );

    // Teardown removes the flow and the association, and says so.
    local.run(&["deploy", "--env", env], &second)?.ok()?;
    let torn = local
        .run(&["teardown", "--env", env, "--output", "json"], &second)?
        .ok()?
        .json()?;
    assert_eq!(
        torn["connect_association"], SECOND_CONNECT_INSTANCE,
        "{torn}"
    );
    assert_eq!(torn["sample_flow_deleted"], true, "{torn}");
    let second_id = SECOND_CONNECT_INSTANCE.rsplit('/').next().context("id")?;
    let flows = connect
        .list_contact_flows()
        .instance_id(second_id)
        .send()
        .await?;
    assert!(flows.contact_flow_summary_list().is_empty(), "{flows:?}");
    let functions = connect
        .list_lambda_functions()
        .instance_id(second_id)
        .send()
        .await?;
    assert!(functions.lambda_functions().is_empty(), "{functions:?}");
    Ok(())
}
